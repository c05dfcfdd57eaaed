-- store_list: every store (edgekv sorts, filters and pages them).
-- KEYS[1] <ns>stores  ARGV[1] the store record prefix <ns>s:
-- -> {name, sid, created_at, updated_at, ...}
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local h = redis.call('HMGET', ARGV[1] .. all[i + 1], 'created_at', 'updated_at')
  out[#out + 1] = all[i]
  out[#out + 1] = all[i + 1]
  out[#out + 1] = h[1] or ''
  out[#out + 1] = h[2] or ''
end
return out
