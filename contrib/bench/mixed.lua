-- wrk: 90% GET / 10% PUT of random keys of the loaded set (100-byte values).
-- The requests are formatted once, in init() (see random_get.lua).
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local body = string.rep("w", 100)
local gets, puts = {}, {}

function setup(thread) thread:set("id", math.random(1, 1000000)) end

function init(args)
  math.randomseed(os.time() + id)
  for i = 0, keys - 1 do
    local path = "/kv/" .. store .. "/k" .. i
    gets[i + 1] = wrk.format("GET", path)
    puts[i + 1] = wrk.format("PUT", path, nil, body)
  end
end

request = function()
  if math.random(1, 10) == 1 then return puts[math.random(keys)] end
  return gets[math.random(keys)]
end
