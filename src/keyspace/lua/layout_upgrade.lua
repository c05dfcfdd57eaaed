-- layout_upgrade: moves the store registry and the resource links of the first layout (a
-- single Redis: <ns>stores, <ns>s:<sid>, <ns>links:<service>) to their keys under the registry's
-- own hash tag, once, atomically: POPs that start together run it one after the other, and the
-- first one's run leaves nothing for the next. Items, indexes and generation counters keep their
-- keys. Every connection runs it before anything else, so no registry command ever sees the old
-- layout. The links are found with SCAN: Redis is busy with this script for about a second per
-- million keys, once.
-- KEYS[1] <ns>layout:{registry}  KEYS[2] <ns>stores  KEYS[3] <ns>stores:{registry}
-- ARGV[1] <ns>
-- -> {OK, moved} (moved: 1 if this run moved the registry, else 0)
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK = 0
if redis.call('GET', KEYS[1]) == '2' then return {OK, 0} end
local ns = ARGV[1]
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local old = ns .. 's:' .. all[i + 1]
  if redis.call('EXISTS', old) == 1 then
    redis.call('RENAME', old, ns .. 's:{registry}:' .. all[i + 1])
  end
  redis.call('HSET', KEYS[3], all[i], all[i + 1])
end
redis.call('DEL', KEYS[2])
local pattern = (ns .. 'links:'):gsub('[%*%?%[%]\\]', '\\%0') .. '*'
local tagged = ns .. 'links:{registry}:'
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    if k:sub(1, #tagged) ~= tagged and redis.call('TYPE', k).ok == 'hash' then
      redis.call('RENAME', k, tagged .. k:sub(#ns + 7))
    end
  end
until cursor == '0'
redis.call('SET', KEYS[1], '2')
return {OK, #all > 0 and 1 or 0}
