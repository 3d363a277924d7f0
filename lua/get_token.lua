-- get_token: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id or "",
-- ARGV[3] active max, ARGV[4] active ttl ms, ARGV[5] idle timeout ms.
-- Returns {"OK", token JSON, position, eta} | {"TOKEN_NOT_FOUND"} |
-- {"FORBIDDEN"}. Counts as a sighting. O(log n).
local tok, uid = ARGV[1], ARGV[2]
local max, ttl, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
admit(now, max, ttl, idle)
local t = jget(tok_key(tok))
if not t then return { 'TOKEN_NOT_FOUND' } end
if uid ~= '' and int(t.user_id) ~= uid then return { 'FORBIDDEN' } end
local view = token_view(tok, t, now, max, ttl)
return { 'OK', view[1], view[2], view[3] }
