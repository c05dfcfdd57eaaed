-- store_delete: the store's record and its name leave the registry (once store_bucket.lua has
-- sealed its buckets).
-- KEYS[1] <ns>stores:{registry}  KEYS[2] <ns>s:{registry}:<sid>  ARGV[1] sid
-- -> {OK} | {NO_STORE}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE = 0, 1
local name = redis.call('HGET', KEYS[2], 'name')
if not name then return {NO_STORE} end
redis.call('DEL', KEYS[2])
if redis.call('HGET', KEYS[1], name) == ARGV[1] then redis.call('HDEL', KEYS[1], name) end
return {OK}
