-- charge_balance: KEYS[1] wallet base; ARGV[1] user id, ARGV[2] amount
-- (validated 1..10,000,000 by the caller), ARGV[3] balance ceiling,
-- ARGV[4] idempotency key or "".
-- Returns {"OK", json} | {"REPLAY", json} | {"BALANCE_LIMIT", balance} |
-- {"USER_NOT_FOUND"}. O(1). Refusals change nothing.
local uid, amount, ceiling, ikey = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local idem = B .. 'idem:' .. uid .. ':charge:' .. ikey
if ikey ~= '' then
  local first = redis.call('GET', idem)
  if first then return { 'REPLAY', first } end
end
local balance = redis.call('HGET', B .. 'w:' .. uid, 'balance')
if not balance then return { 'USER_NOT_FOUND' } end
if tonumber(balance) + amount > ceiling then
  return { 'BALANCE_LIMIT', balance }
end
local after = book(uid, 'CHARGE', amount, nil, now_ms(), ikey ~= '' and ikey or nil)
local answer = cjson.encode({ user_id = tonumber(uid), amount = amount, balance = after })
if ikey ~= '' then
  redis.call('SET', idem, answer, 'EX', 86400)
end
return { 'OK', answer }
