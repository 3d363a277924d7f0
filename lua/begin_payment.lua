-- begin_payment: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id,
-- ARGV[3] reservation id, ARGV[4] new payment id, ARGV[5] idempotency key
-- or "". Step 1 of the payment saga: the reservation becomes PAYING (it
-- cannot expire while paying) and a PENDING payment is recorded.
-- Returns {"OK", payment JSON} | {"RESUME", payment id} (a retry with the
-- same idempotency key: finish that payment) | {code[, detail]}: a gate
-- error, RESERVATION_NOT_FOUND, ALREADY_PAID, HOLD_EXPIRED, INVALID_STATE.
-- O(1).
local tok, uid, rid, pid, ikey = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local idem = B .. 'idem:' .. uid .. ':pay:' .. ikey
if ikey ~= '' then
  local first = redis.call('GET', idem)
  if first then return { 'RESUME', first } end
end
local denied = gate(tok, uid, now)
if denied then return { denied } end
local r = load_res(rid, now)
if not r or int(r.user_id) ~= uid then return { 'RESERVATION_NOT_FOUND' } end
if r.status == 'CONFIRMED' then return { 'ALREADY_PAID' } end
if r.status == 'PAYING' then return { 'ALREADY_PAID', 'a payment of this reservation is in progress' } end
if r.status == 'EXPIRED' then return { 'HOLD_EXPIRED' } end
if r.status ~= 'HELD' then return { 'INVALID_STATE', 'reservation is ' .. string.lower(r.status) } end
r.status = 'PAYING' -- no event: Postgres sees HELD, then the outcome
r.payment_id = pid
redis.call('SET', res_key(rid), cjson.encode(r))
redis.call('ZREM', B .. 'hx', rid)
redis.call('ZREM', B .. 'uh:' .. uid, rid)
redis.call('ZADD', B .. 'paying', now, pid)
local p = {
  id = pid, reservation_id = rid, user_id = r.user_id, concert_id = r.concert_id,
  amount = r.amount, status = 'PENDING', created_at = now,
}
if ikey ~= '' then
  p.idem = ikey
  redis.call('SET', idem, pid, 'EX', 86400)
end
local d = cjson.encode(p)
redis.call('SET', B .. 'p:' .. pid, d)
return { 'OK', d }
