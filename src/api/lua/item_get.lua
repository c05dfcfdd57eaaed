-- item_get: one item in one round trip (value, metadata, generation, last-modified, TTL).
-- KEYS[1] <ns>i:{<sid>}:<key>  KEYS[2] <ns>g:{<sid>}
-- -> {200, value, metadata, generation, last_modified_ms, pttl_ms (-1: no expiry)}
--  | {404, "store"} | {404, "key"}
local h = redis.call('HMGET', KEYS[1], 'v', 'm', 'g', 't')
if not h[3] then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {404, 'store'} end
  return {404, 'key'}
end
return {200, h[1] or '', h[2] or '', h[3], h[4] or '0', redis.call('PTTL', KEYS[1])}
