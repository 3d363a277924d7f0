-- list_schedules: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id,
-- ARGV[3..] schedule ids. Gated. Lapsed holds are released first, so the
-- counts are exact. Returns {"OK", now, avail...} | {"MORE"} (more lapsed
-- holds than one call releases: call again) | {gate error}. O(k).
local now = now_ms()
local denied = gate(ARGV[1], ARGV[2], now)
if denied then return { denied } end
if release_due(now, 1000) == 1000 then return { 'MORE' } end
local out = { 'OK', now }
for i = 3, #ARGV do
  out[#out + 1] = tonumber(redis.call('HGET', B .. 's:' .. ARGV[i], 'avail') or 0)
end
return out
