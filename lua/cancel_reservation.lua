-- cancel_reservation: KEYS[1] concert base; ARGV[1] user id, ARGV[2]
-- reservation id. HELD becomes CANCELLED at once; CONFIRMED starts the
-- refund saga (the caller credits the wallet, then finish_refund).
-- Returns {"CANCELLED", JSON} | {"REFUND", JSON} | {code}:
-- RESERVATION_NOT_FOUND, BOOKING_CLOSED, INVALID_STATE. O(seats).
local uid, rid = ARGV[1], ARGV[2]
local now = now_ms()
local r = load_res(rid, now)
if not r or int(r.user_id) ~= uid then return { 'RESERVATION_NOT_FOUND' } end
if r.status == 'HELD' then
  release(r, 'CANCELLED', now)
  return { 'CANCELLED', cjson.encode(r) }
end
if r.status == 'PAYING' then
  return { 'INVALID_STATE', 'a payment of this reservation is in progress' }
end
if r.status ~= 'CONFIRMED' then
  return { 'INVALID_STATE', 'reservation is ' .. string.lower(r.status) }
end
local starts = tonumber(redis.call('HGET', B .. 's:' .. int(r.schedule_id), 'starts_at'))
if not r.refund_started then
  if now >= starts then return { 'BOOKING_CLOSED', 'the show has started' } end
  r.refund_started = now -- no event: Postgres sees CONFIRMED, then REFUNDED
  redis.call('SET', res_key(rid), cjson.encode(r))
  redis.call('ZADD', B .. 'refunding', now, rid)
end
return { 'REFUND', cjson.encode(r) }
