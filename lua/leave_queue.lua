-- leave_queue: KEYS[1] concert base; ARGV[1] token, ARGV[2] user id,
-- ARGV[3] active max, ARGV[4] active ttl ms, ARGV[5] idle timeout ms.
-- Expires the token, frees its slot and admits the next waiter at once.
-- Returns {"OK"} | {"TOKEN_NOT_FOUND"} | {"FORBIDDEN"}. O(log n).
local tok, uid = ARGV[1], ARGV[2]
local now = now_ms()
local t = jget(tok_key(tok))
if not t then return { 'TOKEN_NOT_FOUND' } end
if int(t.user_id) ~= uid then return { 'FORBIDDEN' } end
expire_token(tok, now)
admit(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return { 'OK' }
