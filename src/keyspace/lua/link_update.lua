-- link_update: renames a resource link.
-- KEYS[1] <ns>links:<service>  ARGV[1] link id  ARGV[2] new name ('' = unchanged)  ARGV[3] now
-- -> {OK, json} | {NO_LINK} | {NAME_TAKEN}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NAME_TAKEN, NO_LINK = 0, 5, 9
local j = redis.call('HGET', KEYS[1], 'l:' .. ARGV[1])
if not j then return {NO_LINK} end
local o = cjson.decode(j)
if ARGV[2] ~= '' and ARGV[2] ~= o.name then
  if redis.call('HEXISTS', KEYS[1], 'n:' .. ARGV[2]) == 1 then return {NAME_TAKEN} end
  if redis.call('HGET', KEYS[1], 'n:' .. o.name) == ARGV[1] then
    redis.call('HDEL', KEYS[1], 'n:' .. o.name)
  end
  o.name = ARGV[2]
  redis.call('HSET', KEYS[1], 'n:' .. o.name, ARGV[1])
end
o.updated_at = ARGV[3]
j = cjson.encode(o)
redis.call('HSET', KEYS[1], 'l:' .. ARGV[1], j)
return {OK, j}
