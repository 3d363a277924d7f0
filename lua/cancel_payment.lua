-- cancel_payment: KEYS[1] concert base; ARGV[1] payment id, ARGV[2] reason
-- (INSUFFICIENT_BALANCE, ABANDONED). Step 3 of the saga when the wallet
-- refused or the payment was voided: the reservation is HELD again (or
-- EXPIRED if its hold lapsed meanwhile), the payment FAILED, and its
-- idempotency key forgotten, so a retry runs anew. Idempotent.
-- Returns {"OK", payment JSON} | {"PAYMENT_NOT_FOUND"}. O(seats).
local pid = ARGV[1]
local now = now_ms()
local p = jget(B .. 'p:' .. pid)
if not p then return { 'PAYMENT_NOT_FOUND' } end
if p.status ~= 'PENDING' then return { 'OK', cjson.encode(p) } end
local r = jget(res_key(p.reservation_id))
if r.status == 'PAYING' and r.payment_id == pid then
  r.status = 'HELD'
  r.payment_id = nil
  if r.expires_at <= now then
    release(r, 'EXPIRED', now)
  else
    redis.call('SET', res_key(r.id), cjson.encode(r))
    redis.call('ZADD', B .. 'hx', r.expires_at, r.id)
    redis.call('ZADD', B .. 'uh:' .. int(r.user_id), r.expires_at, r.id)
  end
end
if p.idem then
  local idem = B .. 'idem:' .. int(p.user_id) .. ':pay:' .. p.idem
  if redis.call('GET', idem) == pid then redis.call('DEL', idem) end
  p.idem = nil
end
p.status = 'FAILED'
p.reason = ARGV[2]
local d = put(B .. 'p:' .. pid, 'payment', p)
redis.call('ZREM', B .. 'paying', pid)
return { 'OK', d }
