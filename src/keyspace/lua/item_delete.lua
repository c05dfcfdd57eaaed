-- item_delete: deletes an item (if-generation-match, force) and its index entry.
-- KEYS[1] <ns>i:{<sid>}:<key>  KEYS[2] <ns>x:{<sid>}  KEYS[3] <ns>g:{<sid>}
-- ARGV[1] key  ARGV[2] if-generation-match ('' = none)  ARGV[3] force ('1' / '0')
-- -> {OK} | {NO_STORE} | {NO_KEY} | {PRECONDITION_FAILED}
-- Replies start with a domain code (src/keyspace/keyspace_int.h, enum ekv_ks_code).
local OK, NO_STORE, NO_KEY, PRECONDITION_FAILED = 0, 1, 2, 3
if redis.call('EXISTS', KEYS[3]) == 0 then return {NO_STORE} end
local cur = redis.call('HGET', KEYS[1], 'g')
local igm = ARGV[2]
if igm ~= '' then
  if cur then
    if tonumber(cur) ~= tonumber(igm) then return {PRECONDITION_FAILED} end
  elseif tonumber(igm) ~= 0 then
    return {PRECONDITION_FAILED}
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 and ARGV[3] ~= '1' then return {NO_KEY} end
return {OK}
