-- Prelude of the concert scripts (tag {c:<id>}), after common.lua.
--
-- Queue:   q:wait  zset token -> arrival number (strict FIFO)
--          q:seen  zset token -> last sighting (ms), waiting tokens only
--          q:act   zset token -> active_until (ms)
--          q:user  hash user  -> live token
--          q:seq   counter of arrivals;  q:adm hash second -> admissions
--          q:ver   version of the line (`line_moved`)
--          q:stat  hash admitted, dropped (totals, for metrics)
--          t:<tok> token JSON (EXPIRED ones live one more hour)
-- Booking: s:<sid> hash schedule (starts_at, opens_at, seat_count, price,
--          limit, avail);  seats:<sid> one byte a seat: A(vailable) H(eld) S(old)
--          own:<sid> hash seat -> reservation id (held or sold seats)
--          uc:<sid> hash user -> seats held or bought (purchase limit)
--          r:<rid> reservation JSON;  hx zset rid -> expires_at (HELD only)
--          ur:<uid> zset rid -> held_at (all of the user's reservations)
--          uh:<uid> zset rid -> expires_at (the user's HELD ones only)
--          p:<pid> payment JSON
--          paying zset pid -> saga start;  refunding zset rid -> saga start
--          idem:<uid>:<scope>:<key> first answer of an idempotent request

local function tok_key(tok) return B .. 't:' .. tok end
local function res_key(rid) return B .. 'r:' .. rid end

-- The line's version changes whenever a token leaves q:wait. Arrivals join
-- at its end and move nobody, so a waiter's place read at one version
-- holds for as long as the version does. A missing version starts from the
-- clock (in thousandths of a millisecond), so a line lost with Redis never
-- repeats a version read before.
local function line_start(now)
  local version = string.format('%d', now * 1000)
  redis.call('SET', B .. 'q:ver', version)
  return version
end

local function line_moved(now)
  if redis.call('INCR', B .. 'q:ver') == 1 then
    line_start(now) -- there was none
  end
end

-- The line's version (text), started if there is none yet.
local function line_version(now)
  return redis.call('GET', B .. 'q:ver') or line_start(now)
end

local function expire_token(tok, now)
  local t = jget(tok_key(tok))
  if redis.call('ZREM', B .. 'q:wait', tok) == 1 then
    line_moved(now)
  end
  redis.call('ZREM', B .. 'q:seen', tok)
  redis.call('ZREM', B .. 'q:act', tok)
  if not t or t.status == 'EXPIRED' then
    return
  end
  local uid = int(t.user_id)
  if redis.call('HGET', B .. 'q:user', uid) == tok then
    redis.call('HDEL', B .. 'q:user', uid)
  end
  t.status = 'EXPIRED'
  t.expired_at = now
  put(tok_key(tok), 'token', t, 3600)
end

local function activate(tok, now, ttl)
  local t = jget(tok_key(tok))
  if not t then
    return false
  end
  t.status = 'ACTIVE'
  t.activated_at = now
  t.active_until = now + ttl
  redis.call('ZADD', B .. 'q:act', t.active_until, tok)
  redis.call('HINCRBY', B .. 'q:adm', int(math.floor(now / 1000)), 1)
  redis.call('HINCRBY', B .. 'q:stat', 'admitted', 1)
  put(tok_key(tok), 'token', t)
  return true
end

-- Sightings are written only once the last one is a grain old (a
-- twentieth of the idle timeout: 3 s of the default 60 s): waiters poll
-- more often than that, and every write costs a sorted-set update and its
-- propagation. A recorded sighting is thus up to a grain older than the
-- real one, and a waiter is dropped only once the recorded one is older
-- than the idle timeout plus a grain: never before the idle timeout, at
-- most a grain after it.
local function sighting_grain(idle)
  return idle / 20
end

-- Marks a waiting token seen (at most once a grain); returns the sighting
-- now recorded (ms), or nil for a token that is not waiting.
local function sight(tok, now, idle)
  local seen = redis.call('ZSCORE', B .. 'q:seen', tok)
  if not seen then return nil end
  seen = tonumber(seen)
  if now - seen >= sighting_grain(idle) then
    redis.call('ZADD', B .. 'q:seen', 'XX', now, tok)
    return now
  end
  return seen
end

-- Drops expired actives and idle waiters, then fills every free slot with
-- the oldest live waiters. Exact because it runs inside one script.
local function admit(now, max, ttl, idle)
  local due = redis.call('ZRANGEBYSCORE', B .. 'q:act', '-inf', now, 'LIMIT', 0, 1000)
  for _, tok in ipairs(due) do
    expire_token(tok, now)
  end
  local cutoff = now - idle - sighting_grain(idle)
  local stale = redis.call('ZRANGEBYSCORE', B .. 'q:seen', '-inf', cutoff, 'LIMIT', 0, 1000)
  for _, tok in ipairs(stale) do
    expire_token(tok, now)
    redis.call('HINCRBY', B .. 'q:stat', 'dropped', 1)
  end
  local free = max - redis.call('ZCARD', B .. 'q:act')
  while free > 0 do
    local batch = redis.call('ZRANGE', B .. 'q:wait', 0, free - 1)
    if #batch == 0 then
      break
    end
    for _, tok in ipairs(batch) do
      local seen = tonumber(redis.call('ZSCORE', B .. 'q:seen', tok) or 0)
      if seen <= cutoff then
        expire_token(tok, now) -- a ghost never takes a slot
        redis.call('HINCRBY', B .. 'q:stat', 'dropped', 1)
      else
        redis.call('ZREM', B .. 'q:wait', tok)
        redis.call('ZREM', B .. 'q:seen', tok)
        line_moved(now)
        activate(tok, now, ttl)
        free = free - 1
      end
    end
  end
end

-- Admissions over the last minute and the seconds they span (at least a
-- 10 s window, so the first burst into empty slots does not promise
-- everyone an instant turn). Worked out once per call of a script.
local rate_total, rate_span = nil, nil
local function admission_counts(now)
  if rate_total then return rate_total, rate_span end
  local sec = math.floor(now / 1000)
  local all = redis.call('HGETALL', B .. 'q:adm')
  local total, oldest = 0, sec
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= sec - 60 then
      redis.call('HDEL', B .. 'q:adm', all[i])
    else
      total = total + tonumber(all[i + 1])
      if s < oldest then oldest = s end
    end
  end
  rate_total, rate_span = total, math.max(sec - oldest + 1, 10)
  return rate_total, rate_span
end

-- Admissions a second over the last minute (`admission_counts`).
local function admission_rate(now)
  local total, span = admission_counts(now)
  return total / span
end

-- Seconds until a waiter at `position` is admitted: measured rate, or one
-- active lifetime per full wave of slots while nothing was admitted yet.
local function eta(position, rate, max, ttl)
  if position <= 0 then return 0 end
  if rate > 0 then return math.ceil(position / rate) end
  return math.ceil(position / max) * math.ceil(ttl / 1000)
end

-- Position and eta of a token (0, 0 unless waiting: every WAITING token is
-- in q:wait, no other is, so the token's JSON is not needed); a waiting
-- token is also marked seen, and its recorded sighting comes third.
local function waiting_place(tok, now, max, ttl, idle)
  local rank = redis.call('ZRANK', B .. 'q:wait', tok)
  if not rank then return 0, 0, nil end
  local seen = sight(tok, now, idle)
  return rank + 1, eta(rank + 1, admission_rate(now), max, ttl), seen
end

-- {token JSON, position, eta}; a waiting token is also marked seen.
local function token_view(tok, t, now, max, ttl, idle)
  local position, wait = waiting_place(tok, now, max, ttl, idle)
  return { cjson.encode(t), position, wait }
end

-- nil when the token lets its user book, else the gate's error code.
-- `uid` is the user id as text.
local function gate(tok, uid, now)
  -- An ACTIVE token is in q:act until its end, and is its user's live
  -- token: two lookups, no JSON. Anything else takes the full check.
  local until_ms = redis.call('ZSCORE', B .. 'q:act', tok)
  if until_ms and tonumber(until_ms) > now and redis.call('HGET', B .. 'q:user', uid) == tok then
    return nil
  end
  local t = jget(tok_key(tok))
  if not t or t.status == 'EXPIRED' then return 'QUEUE_TOKEN_INVALID' end
  if int(t.user_id) ~= uid then return 'FORBIDDEN' end
  if t.status ~= 'ACTIVE' then return 'QUEUE_NOT_ACTIVE' end
  if t.active_until <= now then return 'QUEUE_TOKEN_INVALID' end
  return nil
end

local function save_res(r, now)
  r.updated_at = now
  r.v = (r.v or 0) + 1
  return put(res_key(r.id), 'reservation', r)
end

-- Puts the seats of a reservation back on sale (only those it still owns).
local function free_seats(r)
  local sid = int(r.schedule_id)
  local freed = 0
  for _, n in ipairs(r.seats) do
    if redis.call('HGET', B .. 'own:' .. sid, int(n)) == r.id then
      redis.call('SETRANGE', B .. 'seats:' .. sid, n - 1, 'A')
      redis.call('HDEL', B .. 'own:' .. sid, int(n))
      freed = freed + 1
    end
  end
  redis.call('HINCRBY', B .. 'uc:' .. sid, int(r.user_id), -#r.seats)
  redis.call('HINCRBY', B .. 's:' .. sid, 'avail', freed)
end

-- HELD -> status (EXPIRED or CANCELLED), seats back on sale.
local function release(r, status, now)
  if r.status ~= 'HELD' then return end
  free_seats(r)
  redis.call('ZREM', B .. 'hx', r.id)
  redis.call('ZREM', B .. 'uh:' .. int(r.user_id), r.id)
  r.status = status
  if status == 'CANCELLED' then r.cancelled_at = now end
  save_res(r, now)
end

-- Expires up to `limit` holds that are due; returns how many were due.
local function release_due(now, limit)
  local due = redis.call('ZRANGEBYSCORE', B .. 'hx', '-inf', now, 'LIMIT', 0, limit)
  for _, rid in ipairs(due) do
    local r = jget(res_key(rid))
    if r and r.status == 'HELD' then
      release(r, 'EXPIRED', now)
    else
      redis.call('ZREM', B .. 'hx', rid)
    end
  end
  return #due
end

-- Whether a reservation still holding seats may have lapsed: a hold is in
-- hx until its expiry; a reservation being paid is not in hx at all.
local function may_have_lapsed(rid, now)
  local due = redis.call('ZSCORE', B .. 'hx', rid)
  return not due or tonumber(due) <= now
end

-- A reservation with its lazy expiry applied.
local function load_res(rid, now)
  local r = jget(res_key(rid))
  if r and r.status == 'HELD' and r.expires_at <= now then
    release(r, 'EXPIRED', now)
  end
  return r
end

-- The user's live token leaves the queue (after a payment), freeing its slot.
local function expire_user_token(uid, now)
  local tok = redis.call('HGET', B .. 'q:user', uid)
  if tok then expire_token(tok, now) end
end
