-- store_purge: the first half of a store's deletion, in the store's own slot: an empty store
-- loses its generation counter (from then on no item script finds it) and its index. Index
-- entries whose item is gone are pruned on the way; one live item means the store is not empty.
-- A store without a counter (deleted half way before) is purged already. store_delete then
-- removes it from the registry.
-- KEYS[1] <ns>g:{<sid>}  KEYS[2] <ns>x:{<sid>}  ARGV[1] item key prefix <ns>i:{<sid>}:
-- -> {OK} | {NOT_EMPTY}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NOT_EMPTY = 0, 7
local min = '-'
while true do
  local names = redis.call('ZRANGEBYLEX', KEYS[2], min, '+', 'LIMIT', 0, 256)
  if #names == 0 then break end
  for _, k in ipairs(names) do
    if redis.call('EXISTS', ARGV[1] .. k) == 1 then return {NOT_EMPTY} end
    redis.call('ZREM', KEYS[2], k)
  end
  min = '(' .. names[#names]
end
redis.call('DEL', KEYS[1], KEYS[2])
return {OK}
