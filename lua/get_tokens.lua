-- get_tokens: KEYS[1] concert base; ARGV[1] active max, ARGV[2] active ttl
-- ms, ARGV[3] idle timeout ms, then pairs ARGV[4..]: token, user id or ""
-- (with an id, the token must be that user's).
-- Returns four slots a pair, in order: {"OK", token JSON, position, eta} |
-- {"TOKEN_NOT_FOUND", "", 0, 0} | {"FORBIDDEN", "", 0, 0}. A waiting token
-- read counts as a sighting (`sight`). One call serves every status read
-- that reached an instance while its previous call ran, so admission runs
-- once for all.
-- O(k log n) for k tokens; a token's JSON is decoded only to tell whose an
-- ended token is.
local max, ttl, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
admit(now, max, ttl, idle)
local out = {}
local function answer(code, json, position, wait)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = code, json, position, wait
end
for i = 4, #ARGV - 1, 2 do
  local tok, uid = ARGV[i], ARGV[i + 1]
  local json = redis.call('GET', tok_key(tok))
  if not json then
    answer('TOKEN_NOT_FOUND', '', 0, 0)
  elseif uid ~= '' and redis.call('HGET', B .. 'q:user', uid) ~= tok
      and int(cjson.decode(json).user_id) ~= uid then
    -- Not the user's live token, nor one of theirs that ended.
    answer('FORBIDDEN', '', 0, 0)
  else
    local position, wait = waiting_place(tok, now, max, ttl, idle)
    answer('OK', json, position, wait) -- the stored JSON, not decoded
  end
end
return out
