-- debit_wallet: KEYS[1] wallet base; ARGV[1] user id, ARGV[2] payment id,
-- ARGV[3] amount. Step 2 of the payment saga, idempotent by payment id.
-- Returns {"DEBITED", balance_after} | {"VOID"} | {"INSUFFICIENT", balance}
-- | {"USER_NOT_FOUND"}. O(1). A refusal voids the payment id, so a late
-- retry of the same payment can never debit after the saga was cancelled.
-- A refusal for lack of funds is recorded as such ("I"), so a concurrent
-- retry of the same payment gets the same answer, not VOID.
local uid, pid, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rec = B .. 'pay:' .. pid
local seen = redis.call('GET', rec)
local balance = redis.call('HGET', B .. 'w:' .. uid, 'balance')
if seen then
  if seen == 'I' then return { 'INSUFFICIENT', balance or '0' } end
  if seen == 'V' then return { 'VOID' } end
  return { 'DEBITED', string.sub(seen, 3) }
end
if not balance then return { 'USER_NOT_FOUND' } end
if tonumber(balance) < amount then
  redis.call('SET', rec, 'I', 'EX', SAGA_TTL)
  return { 'INSUFFICIENT', balance }
end
local after = book(uid, 'PAYMENT', -amount, pid, now_ms())
redis.call('SET', rec, 'D:' .. int(after), 'EX', SAGA_TTL)
return { 'DEBITED', int(after) }
