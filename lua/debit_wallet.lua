-- debit_wallet: KEYS[1] wallet base; ARGV[1] user id, ARGV[2] payment id,
-- ARGV[3] amount. Step 2 of the payment saga, idempotent by payment id.
-- Returns {"DEBITED", balance_after} | {"VOID"} | {"INSUFFICIENT", balance}
-- | {"USER_NOT_FOUND"}. O(1). A refusal voids the payment id, so a late
-- retry of the same payment can never debit after the saga was cancelled.
local uid, pid, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rec = B .. 'pay:' .. pid
local seen = redis.call('GET', rec)
if seen then
  if seen == 'V' then return { 'VOID' } end
  return { 'DEBITED', string.sub(seen, 3) }
end
local balance = redis.call('HGET', B .. 'w:' .. uid, 'balance')
if not balance then return { 'USER_NOT_FOUND' } end
if tonumber(balance) < amount then
  redis.call('SET', rec, 'V', 'EX', SAGA_TTL)
  return { 'INSUFFICIENT', balance }
end
local after = book(uid, 'PAYMENT', -amount, pid, now_ms())
redis.call('SET', rec, 'D:' .. int(after), 'EX', SAGA_TTL)
return { 'DEBITED', int(after) }
