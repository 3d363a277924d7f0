-- confirm_payment: KEYS[1] concert base; ARGV[1] payment id, ARGV[2]
-- balance after the debit, ARGV[3] active max, ARGV[4] active ttl ms,
-- ARGV[5] idle timeout ms. Step 3 of the saga after the wallet debited:
-- together, seats SOLD, reservation CONFIRMED, payment SUCCESS, the user's
-- queue token EXPIRED (its slot goes to the next waiter). Idempotent.
-- Returns {"OK", payment JSON} | {"PAYMENT_NOT_FOUND"}. O(seats).
local pid = ARGV[1]
local now = now_ms()
local p = jget(B .. 'p:' .. pid)
if not p then return { 'PAYMENT_NOT_FOUND' } end
if p.status ~= 'PENDING' then return { 'OK', cjson.encode(p) } end
local r = jget(res_key(p.reservation_id))
local sid = int(r.schedule_id)
for _, n in ipairs(r.seats) do
  redis.call('SETRANGE', B .. 'seats:' .. sid, n - 1, 'S')
end
r.status = 'CONFIRMED'
r.confirmed_at = now
save_res(r, now)
p.status = 'SUCCESS'
p.balance_after = tonumber(ARGV[2])
p.paid_at = now -- p.idem stays: rebuild restores the idempotency record
local d = put(B .. 'p:' .. pid, 'payment', p)
redis.call('ZREM', B .. 'paying', pid)
expire_user_token(int(r.user_id), now)
admit(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return { 'OK', d }
