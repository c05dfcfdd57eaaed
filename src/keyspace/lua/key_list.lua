-- key_list: one page of a store's key names, sorted bytewise. Names whose item no longer exists
-- (expired, or deleted by a foreign writer) are skipped and pruned from the index.
-- KEYS[1] <ns>x:{<sid>}  KEYS[2] <ns>g:{<sid>}
-- ARGV[1] item key prefix <ns>i:{<sid>}:  ARGV[2] min, ARGV[3] max (ZRANGEBYLEX bounds, computed
-- by edgekv: Lua's string comparison follows the server's locale)  ARGV[4] page size
-- -> {OK, more (0/1), name...} | {NO_STORE}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE = 0, 1
if redis.call('EXISTS', KEYS[2]) == 0 then return {NO_STORE} end
local limit = tonumber(ARGV[4])
local min, max = ARGV[2], ARGV[3]
local out = {OK, 0}
local n = 0
while true do
  local want = limit + 1 - n
  if want < 64 then want = 64 end
  local names = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', 0, want)
  if #names == 0 then break end
  for _, k in ipairs(names) do
    if redis.call('EXISTS', ARGV[1] .. k) == 1 then
      if n == limit then
        out[2] = 1
        return out
      end
      n = n + 1
      out[n + 2] = k
    else
      redis.call('ZREM', KEYS[1], k)
    end
  end
  if #names < want then break end
  min = '(' .. names[#names]
end
return out
