-- resolve: the store id behind /kv/<name>: a resource link of the configured service first,
-- then a store name.
-- KEYS[1] <ns>stores  KEYS[2] <ns>links:<service> (absent without service-id)  ARGV[1] name
-- -> sid | nil
if KEYS[2] then
  local lid = redis.call('HGET', KEYS[2], 'n:' .. ARGV[1])
  if lid then
    local j = redis.call('HGET', KEYS[2], 'l:' .. lid)
    if j then
      local ok, o = pcall(cjson.decode, j)
      if ok and type(o) == 'table' and type(o.resource_id) == 'string' then
        return o.resource_id
      end
    end
  end
end
return redis.call('HGET', KEYS[1], ARGV[1])
