-- wrk: PUT 100-byte values to random keys of the loaded set (every request writes Redis).
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local body = string.rep("p", 100)

function setup(thread) thread:set("id", math.random(1, 1000000)) end
function init(args) math.randomseed(os.time() + id) end

request = function()
  return wrk.format("PUT", "/kv/" .. store .. "/k" .. math.random(0, keys - 1), nil, body)
end
