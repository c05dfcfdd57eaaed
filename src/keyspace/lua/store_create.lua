-- store_create: registers a store: name -> id and its record, in the registry (one hash tag of
-- its own, so this script touches one slot). The generation counters of the store's buckets, in
-- their own slots, were created (SET NX) just before, and are deleted again when this answers
-- anything but OK.
-- KEYS[1] <ns>stores:{registry}  KEYS[2] <ns>s:{registry}:<sid>
-- ARGV[1] name  ARGV[2] sid  ARGV[3] now ("2025-06-23 19:41:15")  ARGV[4] max-stores
-- ARGV[5] the store's buckets (store-shards)
-- -> {OK} | {NAME_TAKEN} | {LIMIT} (max-stores) | {ID_TAKEN} (id collision: retry)
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NAME_TAKEN, LIMIT, ID_TAKEN = 0, 5, 6, 8
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {NAME_TAKEN} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {LIMIT} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {ID_TAKEN} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'created_at', ARGV[3], 'updated_at', ARGV[3],
           'shards', ARGV[5])
return {OK}
