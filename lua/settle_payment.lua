-- settle_payment: KEYS[1] wallet base; ARGV[1] payment id.
-- Recovery of a payment saga left half-done: "debited, or now void?" in one
-- atomic step. Returns {"DEBITED", balance_after} | {"VOID"}. O(1).
local rec = B .. 'pay:' .. ARGV[1]
local seen = redis.call('GET', rec)
if not seen then
  redis.call('SET', rec, 'V', 'EX', SAGA_TTL)
  return { 'VOID' }
end
-- "V" (voided) and "I" (refused for lack of funds) both mean: never debited.
if string.sub(seen, 1, 2) ~= 'D:' then return { 'VOID' } end
return { 'DEBITED', string.sub(seen, 3) }
