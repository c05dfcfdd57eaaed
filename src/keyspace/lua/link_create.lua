-- link_create: links a store to a service under a name unique within the service.
-- Layout of <ns>links:<service>: 'l:<link id>' -> the link as JSON, 'n:<name>' -> link id.
-- KEYS[1] <ns>links:<service>  KEYS[2] <ns>s:<resource id>
-- ARGV[1] link id  ARGV[2] name ('' = the store's name)  ARGV[3] resource id  ARGV[4] version
-- ARGV[5] now (RFC 3339)
-- -> {OK, json} | {NO_STORE} (no such store to link to) | {NAME_TAKEN}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE, NAME_TAKEN = 0, 1, 5
local sname = redis.call('HGET', KEYS[2], 'name')
if not sname then return {NO_STORE} end
local name = ARGV[2]
if name == '' then name = sname end
if redis.call('HEXISTS', KEYS[1], 'n:' .. name) == 1 then return {NAME_TAKEN} end
local j = cjson.encode({id = ARGV[1], name = name, resource_id = ARGV[3], version = ARGV[4],
                        created_at = ARGV[5], updated_at = ARGV[5]})
redis.call('HSET', KEYS[1], 'n:' .. name, ARGV[1], 'l:' .. ARGV[1], j)
return {OK, j}
