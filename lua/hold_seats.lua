-- hold_seats: KEYS[1] concert base; ARGV: one or more holds, one after the
-- other, each as ARGV[i..]: token, user id, concert id, schedule id, new
-- reservation id, hold ttl ms, idempotency key or "", seat count k, then
-- the k seats (validated: non-empty, distinct, in range, within the limit).
-- The holds are placed in order, each all or nothing, each exactly as a
-- call of its own would place it. Returns two slots a hold: {"OK",
-- reservation JSON} | {"REPLAY", JSON} | {code, detail or ""}: a gate
-- error, SCHEDULE_NOT_FOUND, BOOKING_CLOSED, INVALID_SEATS,
-- SEAT_UNAVAILABLE, PURCHASE_LIMIT_EXCEEDED.
-- O(seats + the user's lapsed holds) a hold.
local now = now_ms()

-- Schedules read by this call (a call's holds are mostly for one date):
-- sid -> its fields as numbers and its keys, or false if there is none.
local schedules = {}
local function schedule(sid)
  local s = schedules[sid]
  if s == nil then
    local f = redis.call('HMGET', B .. 's:' .. sid, 'starts_at', 'opens_at', 'seat_count', 'price', 'limit')
    s = f[1] and {
      starts = tonumber(f[1]), opens = tonumber(f[2]), count = tonumber(f[3]), price = tonumber(f[4]),
      limit = tonumber(f[5]), map = B .. 'seats:' .. sid, owners = B .. 'own:' .. sid,
    } or false
    schedules[sid] = s
  end
  return s
end

local function hold(tok, uid, cid, sid, rid, ttl, ikey, seats)
  local idem
  if ikey ~= '' then
    idem = B .. 'idem:' .. uid .. ':hold:' .. ikey
    local first = redis.call('GET', idem)
    if first then return 'REPLAY', first end
  end
  local denied = gate(tok, uid, now)
  if denied then return denied end
  local s = schedule(sid)
  if not s then return 'SCHEDULE_NOT_FOUND' end
  if now < s.opens or now >= s.starts then return 'BOOKING_CLOSED' end
  for _, n in ipairs(seats) do
    if n < 1 or n > s.count then return 'INVALID_SEATS', 'seat ' .. int(n) .. ' is out of range' end
  end
  local map, owners = s.map, s.owners
  for _, n in ipairs(seats) do
    local state = redis.call('GETRANGE', map, n - 1, n - 1)
    if state == 'H' then
      local owner = redis.call('HGET', owners, int(n))
      if owner and may_have_lapsed(owner, now) then
        load_res(owner, now) -- a lapsed hold is free at once
        state = redis.call('GETRANGE', map, n - 1, n - 1)
      end
    end
    if state == 'H' then return 'SEAT_UNAVAILABLE', 'seat ' .. int(n) .. ' is held' end
    if state == 'S' then return 'SEAT_UNAVAILABLE', 'seat ' .. int(n) .. ' is sold' end
  end
  for _, mine in ipairs(redis.call('ZRANGEBYSCORE', B .. 'uh:' .. uid, '-inf', now)) do
    load_res(mine, now) -- the user's lapsed holds stop counting
  end
  local have = tonumber(redis.call('HGET', B .. 'uc:' .. sid, uid) or 0)
  if have + #seats > s.limit then
    return 'PURCHASE_LIMIT_EXCEEDED', int(have) .. ' held or bought, limit ' .. int(s.limit)
  end
  for _, n in ipairs(seats) do
    redis.call('SETRANGE', map, n - 1, 'H')
    redis.call('HSET', owners, int(n), rid)
  end
  redis.call('HINCRBY', B .. 'uc:' .. sid, uid, #seats)
  redis.call('HINCRBY', B .. 's:' .. sid, 'avail', -#seats)
  local r = {
    id = rid, user_id = tonumber(uid), concert_id = tonumber(cid), schedule_id = tonumber(sid),
    seats = seats, amount = s.price * #seats, status = 'HELD', held_at = now,
    expires_at = now + tonumber(ttl),
  }
  if ikey ~= '' then r.idem = ikey end -- kept, so that rebuild can restore the record
  local d = save_res(r, now)
  redis.call('ZADD', B .. 'hx', r.expires_at, rid)
  redis.call('ZADD', B .. 'ur:' .. uid, now, rid)
  redis.call('ZADD', B .. 'uh:' .. uid, r.expires_at, rid)
  if ikey ~= '' then
    r.idem = nil -- the answer is the reservation alone
    d = cjson.encode(r)
    redis.call('SET', idem, d, 'EX', 86400)
  end
  return 'OK', d
end

local out, i = {}, 1
while i <= #ARGV do
  local k = tonumber(ARGV[i + 7])
  local seats = {}
  for j = 1, k do seats[j] = tonumber(ARGV[i + 7 + j]) end
  local code, payload = hold(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], seats)
  out[#out + 1] = code
  out[#out + 1] = payload or ''
  i = i + 8 + k
end
return out
