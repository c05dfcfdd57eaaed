-- store_rename: gives a store a new, unused name.
-- KEYS[1] <ns>stores  KEYS[2] <ns>s:<sid>  ARGV[1] sid  ARGV[2] new name  ARGV[3] now
-- -> {OK} | {NO_STORE} | {NAME_TAKEN}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE, NAME_TAKEN = 0, 1, 5
local old = redis.call('HGET', KEYS[2], 'name')
if not old then return {NO_STORE} end
if old ~= ARGV[2] then
  if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return {NAME_TAKEN} end
  if redis.call('HGET', KEYS[1], old) == ARGV[1] then redis.call('HDEL', KEYS[1], old) end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
end
redis.call('HSET', KEYS[2], 'name', ARGV[2], 'updated_at', ARGV[3])
return {OK}
