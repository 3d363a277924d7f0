-- sweep_concert: KEYS[1] concert base; ARGV[1] active max, ARGV[2] active
-- ttl ms, ARGV[3] idle timeout ms, ARGV[4] saga age ms after which a
-- payment or refund counts as abandoned, ARGV[5] most holds released,
-- ARGV[6] most abandoned payments (and as many refunds) reported.
-- Keeps a concert moving when nobody polls: admission, hold expiry. Safe on
-- every instance at once. Returns {released, waiting, active, holds,
-- admitted total, dropped total, n, payment ids..., m, refunding
-- reservation ids...}. O((batch + sagas) log n).
local max, ttl, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stale, batch, sagas = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
admit(now, max, ttl, idle)
local released = release_due(now, batch)
local out = {
  released, redis.call('ZCARD', B .. 'q:wait'), redis.call('ZCARD', B .. 'q:act'),
  redis.call('ZCARD', B .. 'hx'),
  tonumber(redis.call('HGET', B .. 'q:stat', 'admitted') or 0),
  tonumber(redis.call('HGET', B .. 'q:stat', 'dropped') or 0),
}
for _, set in ipairs({ 'paying', 'refunding' }) do
  local ids = redis.call('ZRANGEBYSCORE', B .. set, '-inf', now - stale, 'LIMIT', 0, sagas)
  out[#out + 1] = #ids
  for _, id in ipairs(ids) do out[#out + 1] = id end
end
return out
