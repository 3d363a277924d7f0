-- get_seat_map: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id,
-- ARGV[3] schedule id. Gated. Lapsed holds are released first, so a hold
-- past its expiry reads AVAILABLE whether or not a sweeper ran.
-- Returns {"OK", seat bytes A|H|S} | {"MORE"} | {"SCHEDULE_NOT_FOUND"} |
-- {gate error}. O(seats).
local now = now_ms()
local denied = gate(ARGV[1], ARGV[2], now)
if denied then return { denied } end
if release_due(now, 1000) == 1000 then return { 'MORE' } end
local seats = redis.call('GET', B .. 'seats:' .. ARGV[3])
if not seats then return { 'SCHEDULE_NOT_FOUND' } end
return { 'OK', seats }
