-- wrk: GET a random key of the loaded set: /kv/<store>/<prefix><n>, n in [0, keys).
-- Environment: EKV_KEYS (default 10000), EKV_STORE (bench), EKV_PREFIX (k), EKV_NO_CACHE=1 to
-- bypass the edge cache (Cache-Control: no-cache: every request reads Redis).
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local prefix = os.getenv("EKV_PREFIX") or "k"
local headers = {}
if os.getenv("EKV_NO_CACHE") == "1" then headers["Cache-Control"] = "no-cache" end

function setup(thread) thread:set("id", math.random(1, 1000000)) end
function init(args) math.randomseed(os.time() + id) end

request = function()
  return wrk.format("GET", "/kv/" .. store .. "/" .. prefix .. math.random(0, keys - 1), headers)
end
