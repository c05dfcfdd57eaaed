-- store_bucket: one bucket's part in deleting a store (src/keyspace/ops.c): every bucket is
-- checked, then sealed, the record leaves the registry (store_delete.lua), then every bucket is
-- dropped; a bucket found in use on the way ends the delete, and the sealed buckets are unsealed.
--   check   is the bucket empty? Index entries whose item is gone are pruned on the way.
--   seal    the same, and an empty bucket's generation counter moves aside (to KEYS[3]): from
--           then on no item script finds the store there. A bucket without a counter (sealed
--           before, or purged by an older release) is left as it is.
--   unseal  the counter comes back (the delete failed in another bucket).
--   drop    the counter (sealed or not) and the index go.
-- KEYS[1] <ns>g:{<tag>}  KEYS[2] <ns>x:{<tag>}  KEYS[3] <ns>z:{<tag>} (the sealed counter)
-- ARGV[1] mode: check | seal | unseal | drop  ARGV[2] item key prefix <ns>i:{<tag>}:
-- -> {OK} | {NOT_EMPTY}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NOT_EMPTY = 0, 7
local mode = ARGV[1]
if mode == 'unseal' then
  if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('RENAME', KEYS[3], KEYS[1])
  end
  return {OK}
end
if mode == 'drop' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {OK}
end
local min = '-'
while true do
  local names = redis.call('ZRANGEBYLEX', KEYS[2], min, '+', 'LIMIT', 0, 256)
  if #names == 0 then break end
  for _, k in ipairs(names) do
    if redis.call('EXISTS', ARGV[2] .. k) == 1 then return {NOT_EMPTY} end
    redis.call('ZREM', KEYS[2], k)
  end
  min = '(' .. names[#names]
end
if mode == 'seal' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[3])
end
return {OK}
