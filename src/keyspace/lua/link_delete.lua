-- link_delete: removes a resource link.
-- KEYS[1] <ns>links:<service>  ARGV[1] link id
-- -> {OK} | {NO_LINK}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_LINK = 0, 9
local j = redis.call('HGET', KEYS[1], 'l:' .. ARGV[1])
if not j then return {NO_LINK} end
local ok, o = pcall(cjson.decode, j)
redis.call('HDEL', KEYS[1], 'l:' .. ARGV[1])
if ok and type(o) == 'table' and type(o.name) == 'string' and
   redis.call('HGET', KEYS[1], 'n:' .. o.name) == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'n:' .. o.name)
end
return {OK}
