-- wrk: 90% GET / 10% PUT of random keys of the loaded set (100-byte values).
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local body = string.rep("w", 100)

function setup(thread) thread:set("id", math.random(1, 1000000)) end
function init(args) math.randomseed(os.time() + id) end

request = function()
  local path = "/kv/" .. store .. "/k" .. math.random(0, keys - 1)
  if math.random(1, 10) == 1 then
    return wrk.format("PUT", path, nil, body)
  end
  return wrk.format("GET", path)
end
