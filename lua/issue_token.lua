-- issue_token: KEYS[1] concert base; ARGV[1] user id, ARGV[2] fresh token,
-- ARGV[3] concert id, ARGV[4] active max, ARGV[5] active ttl ms,
-- ARGV[6] idle timeout ms.
-- Returns {201|200, token JSON, position, eta seconds}: 200 with the user's
-- live token (same place in line) when there is one. O(log n).
local uid, fresh = ARGV[1], ARGV[2]
local max, ttl, idle = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
admit(now, max, ttl, idle)
local code, tok = 200, redis.call('HGET', B .. 'q:user', uid)
if not tok then
  code, tok = 201, fresh
  local arrival = redis.call('INCR', B .. 'q:seq')
  redis.call('ZADD', B .. 'q:wait', arrival, tok)
  redis.call('ZADD', B .. 'q:seen', now, tok)
  redis.call('HSET', B .. 'q:user', uid, tok)
  put(tok_key(tok), 'token', {
    token = tok, user_id = tonumber(uid), concert_id = tonumber(ARGV[3]),
    status = 'WAITING', issued_at = now,
  })
  admit(now, max, ttl, idle)
end
local view = token_view(tok, jget(tok_key(tok)), now, max, ttl, idle)
return { code, view[1], view[2], view[3] }
