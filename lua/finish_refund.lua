-- finish_refund: KEYS[1] concert base; ARGV[1] reservation id.
-- Step 3 of the refund saga, after the wallet was credited: seats back on
-- sale, reservation and payment REFUNDED. Idempotent.
-- Returns {"OK", reservation JSON} | {"INVALID_STATE"}. O(seats).
local now = now_ms()
local r = jget(res_key(ARGV[1]))
if not r then return { 'INVALID_STATE' } end
if r.status == 'REFUNDED' then return { 'OK', cjson.encode(r) } end
if r.status ~= 'CONFIRMED' or not r.refund_started then return { 'INVALID_STATE' } end
free_seats(r)
r.refund_started = nil
r.status = 'REFUNDED'
r.refunded_at = now
local d = save_res(r, now)
if r.payment_id then
  local p = jget(B .. 'p:' .. r.payment_id)
  if p then
    p.status = 'REFUNDED'
    p.refunded_at = now
    put(B .. 'p:' .. r.payment_id, 'payment', p)
  end
end
redis.call('ZREM', B .. 'refunding', r.id)
return { 'OK', d }
