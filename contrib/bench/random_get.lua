-- wrk: GET a random key of the loaded set: /kv/<store>/<prefix><n>, n in [0, keys).
-- Environment: EKV_KEYS (default 10000), EKV_STORE (bench), EKV_PREFIX (k), EKV_NO_CACHE=1 to
-- bypass the edge cache (Cache-Control: no-cache: every request reads Redis); EKV_STORES
-- ("a,b,c") spreads the requests over several stores (each holding the same keys).
-- The requests are formatted once, in init(): the load generator's own cost per request is a
-- table lookup, so that it measures the server rather than itself.
local keys = tonumber(os.getenv("EKV_KEYS") or "10000")
local store = os.getenv("EKV_STORE") or "bench"
local prefix = os.getenv("EKV_PREFIX") or "k"
local headers = {}
if os.getenv("EKV_NO_CACHE") == "1" then headers["Cache-Control"] = "no-cache" end
local stores = {}
for name in string.gmatch(os.getenv("EKV_STORES") or store, "[^,]+") do stores[#stores + 1] = name end
local reqs = {}

function setup(thread) thread:set("id", math.random(1, 1000000)) end

function init(args)
  math.randomseed(os.time() + id)
  for s = 1, #stores do
    for i = 0, keys - 1 do
      reqs[#reqs + 1] = wrk.format("GET", "/kv/" .. stores[s] .. "/" .. prefix .. i, headers)
    end
  end
end

request = function() return reqs[math.random(#reqs)] end
