-- wrk: PUT 100-byte values to random keys of the loaded set (every request writes Redis).
-- The requests are formatted once, in init() (see random_get.lua).
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local body = string.rep("p", 100)
local reqs = {}

function setup(thread) thread:set("id", math.random(1, 1000000)) end

function init(args)
  math.randomseed(os.time() + id)
  for i = 0, keys - 1 do
    reqs[i + 1] = wrk.format("PUT", "/kv/" .. store .. "/k" .. i, nil, body)
  end
end

request = function() return reqs[math.random(keys)] end
