-- get_tokens: KEYS[1] concert base; ARGV[1] active max, ARGV[2] active ttl
-- ms, ARGV[3] idle timeout ms, ARGV[4] the version of the line the caller
-- last read (`line_moved`) or "", then pairs ARGV[5..]: a token and how to
-- read it:
--   ""       whole: the token's JSON;
--   "<uid>"  whole, and the token must be that user's;
--   "k"      the caller knows the token's owner and issue time, so a
--            waiting token is answered by its place alone (anything else
--            is read whole);
--   "s"      as "k", and a waiting token's sighting is written: the caller
--            asks for one at most once a sighting grain;
--   "K", "S" as "k", "s", and the caller read the token waiting at the
--            version in ARGV[4]: while the line has that version still,
--            the token waits at the place the caller read.
-- Returns the line's version, the
-- admissions of the last minute and the seconds they span
-- (`admission_counts`: the caller works out the wait of a waiter answered
-- by its place), then each read in order, one slot or five:
--   0 (an unchanged place: a "K" or "S" token, the line unmoved) |
--   position (an integer: a known token, still waiting) |
--   "OK", token JSON, position, eta, ms since the recorded sighting |
--   "TOKEN_NOT_FOUND", "", 0, 0, 0 | "FORBIDDEN", "", 0, 0, 0.
-- Polls are most of a rush's traffic and most of them are known waiters
-- in a line that moved by nobody since their last poll, so theirs is the
-- one-slot answer, without even a rank lookup.
-- A whole read of a waiting token counts as a sighting (`sight`), and its
-- fifth slot tells the caller when the next one is due. One call serves
-- every status read that reached an instance while its previous call ran,
-- so admission runs once for all.
-- O(k log n) for k tokens; a token's JSON is decoded only to tell whose an
-- ended token is.
local max, ttl, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
admit(now, max, ttl, idle)
local ver = line_version(now)
local unmoved = ver == ARGV[4]
local out = { ver, admission_counts(now) }
local function answer(code, json, position, wait, age)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = code, json, position, wait, age
end
for i = 5, #ARGV - 1, 2 do
  local tok, how = ARGV[i], ARGV[i + 1]
  local placed = how == 'K' or how == 'S'
  local known = placed or how == 'k' or how == 's'
  -- A known waiter's place: 0 while the line has not moved since the
  -- caller read it there (only leaving q:wait moves it), its rank else.
  local position = placed and unmoved and 0
  if known and not position then
    local rank = redis.call('ZRANK', B .. 'q:wait', tok)
    position = rank and rank + 1
  end
  if position then
    if how == 's' or how == 'S' then
      redis.call('ZADD', B .. 'q:seen', 'XX', now, tok)
    end
    out[#out + 1] = position
  else
    local uid = known and '' or how
    local json = redis.call('GET', tok_key(tok))
    if not json then
      answer('TOKEN_NOT_FOUND', '', 0, 0, 0)
    elseif uid ~= '' and redis.call('HGET', B .. 'q:user', uid) ~= tok
        and int(cjson.decode(json).user_id) ~= uid then
      -- Not the user's live token, nor one of theirs that ended.
      answer('FORBIDDEN', '', 0, 0, 0)
    else
      local place, wait, seen = waiting_place(tok, now, max, ttl, idle)
      answer('OK', json, place, wait, seen and now - seen or 0) -- the stored JSON, not decoded
    end
  end
end
return out
