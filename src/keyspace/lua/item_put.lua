-- item_put: writes a whole item atomically: store check, if-generation-match / add,
-- append / prepend (size limit on the result), metadata (empty: none), TTL, index.
-- KEYS[1] <ns>i:{<sid>}:<key>  KEYS[2] <ns>x:{<sid>}  KEYS[3] <ns>g:{<sid>}
-- ARGV[1] key  ARGV[2] value  ARGV[3] metadata ('' = none)  ARGV[4] TTL ms ('0' = none)
-- ARGV[5] mode: set | add | append | prepend  ARGV[6] if-generation-match ('' = none)
-- ARGV[7] largest value (bytes)
-- -> {OK, generation, last_modified_ms} | {NO_STORE} | {PRECONDITION_FAILED} | {TOO_LARGE}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE, PRECONDITION_FAILED, TOO_LARGE = 0, 1, 3, 4
if redis.call('EXISTS', KEYS[3]) == 0 then return {NO_STORE} end
local cur = redis.call('HGET', KEYS[1], 'g')
local mode, igm = ARGV[5], ARGV[6]
if igm ~= '' then
  -- a missing key has generation "none": only 0 matches it
  if cur then
    if tonumber(cur) ~= tonumber(igm) then return {PRECONDITION_FAILED} end
  elseif tonumber(igm) ~= 0 then
    return {PRECONDITION_FAILED}
  end
end
if mode == 'add' and cur then return {PRECONDITION_FAILED} end
local v = ARGV[2]
if cur and (mode == 'append' or mode == 'prepend') then
  local old = redis.call('HGET', KEYS[1], 'v') or ''
  if #old + #v > tonumber(ARGV[7]) then return {TOO_LARGE} end
  if mode == 'append' then v = old .. v else v = v .. old end
end
-- generations come from the store's counter: they only grow, also across delete + re-create
local g = redis.call('INCR', KEYS[3])
if g >= 9007199254740992 then
  return redis.error_reply('edgekv: generation counter of ' .. KEYS[3] .. ' reached 2^53')
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gs, ts = string.format('%d', g), string.format('%d', ms)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'v', v, 'm', ARGV[3], 'g', gs, 't', ts)
else
  redis.call('HSET', KEYS[1], 'v', v, 'g', gs, 't', ts)
  redis.call('HDEL', KEYS[1], 'm')
end
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return {OK, g, ms}
