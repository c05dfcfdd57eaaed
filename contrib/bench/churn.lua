-- wrk: memory churn through HTTP (contrib/bench/churn.sh): random keys of EKV_KEYS, 70% GET,
-- 20% PUT of a value of a random size among 100 B, 4 KiB, 64 KiB and 512 KiB, 10% DELETE.
-- The requests are formatted once, in init() (see random_get.lua).
local keys = tonumber(os.getenv("EKV_KEYS") or "20000")
local store = os.getenv("EKV_STORE") or "churn"
local sizes = {100, 4096, 65536, 524288}
local bodies = {}
local gets, dels, paths = {}, {}, {}

function setup(thread) thread:set("id", math.random(1, 1000000)) end

function init(args)
  math.randomseed(os.time() + id)
  for i, n in ipairs(sizes) do bodies[i] = string.rep(string.char(96 + i), n) end
  for i = 0, keys - 1 do
    local path = "/kv/" .. store .. "/c" .. i
    paths[i + 1] = path
    gets[i + 1] = wrk.format("GET", path)
    dels[i + 1] = wrk.format("DELETE", path)
  end
end

request = function()
  local r, k = math.random(1, 10), math.random(keys)
  if r <= 7 then return gets[k] end
  if r == 10 then return dels[k] end
  return wrk.format("PUT", paths[k], nil, bodies[math.random(#sizes)])
end
