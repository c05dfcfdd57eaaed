-- store_delete: removes an empty store (its record, counter and index). Index entries whose item
-- is gone are pruned on the way; one live item means the store is not empty.
-- KEYS[1] <ns>stores  KEYS[2] <ns>s:<sid>  KEYS[3] <ns>g:{<sid>}  KEYS[4] <ns>x:{<sid>}
-- ARGV[1] item key prefix <ns>i:{<sid>}:  ARGV[2] sid
-- -> {OK} | {NO_STORE} | {NOT_EMPTY}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE, NOT_EMPTY = 0, 1, 7
local name = redis.call('HGET', KEYS[2], 'name')
if not name then return {NO_STORE} end
local min = '-'
while true do
  local names = redis.call('ZRANGEBYLEX', KEYS[4], min, '+', 'LIMIT', 0, 256)
  if #names == 0 then break end
  for _, k in ipairs(names) do
    if redis.call('EXISTS', ARGV[1] .. k) == 1 then return {NOT_EMPTY} end
    redis.call('ZREM', KEYS[4], k)
  end
  min = '(' .. names[#names]
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if redis.call('HGET', KEYS[1], name) == ARGV[2] then redis.call('HDEL', KEYS[1], name) end
return {OK}
