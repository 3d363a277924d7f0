-- hold_seats: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id,
-- ARGV[3] concert id, ARGV[4] schedule id, ARGV[5] new reservation id,
-- ARGV[6] hold ttl ms, ARGV[7] idempotency key or "", ARGV[8..] seats
-- (validated: non-empty, distinct, in range, within the limit).
-- All or nothing. Returns {"OK", reservation JSON} | {"REPLAY", JSON} |
-- {code[, detail]}: a gate error, SCHEDULE_NOT_FOUND, BOOKING_CLOSED,
-- INVALID_SEATS, SEAT_UNAVAILABLE, PURCHASE_LIMIT_EXCEEDED. O(seats + the user's lapsed holds).
local tok, uid, sid, rid, ikey = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[7]
local now = now_ms()
local idem = B .. 'idem:' .. uid .. ':hold:' .. ikey
if ikey ~= '' then
  local first = redis.call('GET', idem)
  if first then return { 'REPLAY', first } end
end
local denied = gate(tok, uid, now)
if denied then return { denied } end
local s = redis.call('HMGET', B .. 's:' .. sid, 'starts_at', 'opens_at', 'seat_count', 'price', 'limit')
if not s[1] then return { 'SCHEDULE_NOT_FOUND' } end
local starts, opens, count, price, limit =
  tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4]), tonumber(s[5])
if now < opens or now >= starts then return { 'BOOKING_CLOSED' } end
local seats = {}
for i = 8, #ARGV do
  local n = tonumber(ARGV[i])
  if n < 1 or n > count then return { 'INVALID_SEATS', 'seat ' .. ARGV[i] .. ' is out of range' } end
  seats[#seats + 1] = n
end
local map, owners = B .. 'seats:' .. sid, B .. 'own:' .. sid
for _, n in ipairs(seats) do
  local state = redis.call('GETRANGE', map, n - 1, n - 1)
  if state == 'H' then
    local owner = redis.call('HGET', owners, int(n))
    if owner then load_res(owner, now) end -- a lapsed hold is free at once
    state = redis.call('GETRANGE', map, n - 1, n - 1)
  end
  if state == 'H' then return { 'SEAT_UNAVAILABLE', 'seat ' .. int(n) .. ' is held' } end
  if state == 'S' then return { 'SEAT_UNAVAILABLE', 'seat ' .. int(n) .. ' is sold' } end
end
for _, mine in ipairs(redis.call('ZRANGEBYSCORE', B .. 'uh:' .. uid, '-inf', now)) do
  load_res(mine, now) -- the user's lapsed holds stop counting
end
local have = tonumber(redis.call('HGET', B .. 'uc:' .. sid, uid) or 0)
if have + #seats > limit then
  return { 'PURCHASE_LIMIT_EXCEEDED', int(have) .. ' held or bought, limit ' .. int(limit) }
end
for _, n in ipairs(seats) do
  redis.call('SETRANGE', map, n - 1, 'H')
  redis.call('HSET', owners, int(n), rid)
end
redis.call('HINCRBY', B .. 'uc:' .. sid, uid, #seats)
redis.call('HINCRBY', B .. 's:' .. sid, 'avail', -#seats)
local r = {
  id = rid, user_id = tonumber(uid), concert_id = tonumber(ARGV[3]), schedule_id = tonumber(sid),
  seats = seats, amount = price * #seats, status = 'HELD', held_at = now,
  expires_at = now + tonumber(ARGV[6]),
}
local d = save_res(r, now)
redis.call('ZADD', B .. 'hx', r.expires_at, rid)
redis.call('ZADD', B .. 'ur:' .. uid, now, rid)
redis.call('ZADD', B .. 'uh:' .. uid, r.expires_at, rid)
if ikey ~= '' then redis.call('SET', idem, d, 'EX', 86400) end
return { 'OK', d }
