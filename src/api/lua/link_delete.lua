-- link_delete: removes a resource link.
-- KEYS[1] <ns>links:<service>  ARGV[1] link id
-- -> {200} | {404}
local j = redis.call('HGET', KEYS[1], 'l:' .. ARGV[1])
if not j then return {404} end
local ok, o = pcall(cjson.decode, j)
redis.call('HDEL', KEYS[1], 'l:' .. ARGV[1])
if ok and type(o) == 'table' and type(o.name) == 'string' and
   redis.call('HGET', KEYS[1], 'n:' .. o.name) == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'n:' .. o.name)
end
return {200}
