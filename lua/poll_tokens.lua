-- poll_tokens: KEYS[1] concert base; ARGV[1] active max, ARGV[2] active
-- ttl ms, ARGV[3] idle timeout ms, ARGV[4..] tokens with an open stream.
-- Each tick, an instance's open streams of a concert are served by one
-- call per 250 of them (`CHUNK` in src/queue/hub.rs).
-- Returns {now, then per token: status "W"|"A"|"E", position or
-- active_until, eta}. Waiting tokens are marked seen. O(k log n).
local max, ttl, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
admit(now, max, ttl, idle)
local out = { now }
for i = 4, #ARGV do
  local tok = ARGV[i]
  local position, wait = waiting_place(tok, now, max, ttl, idle)
  if position > 0 then
    out[#out + 1] = 'W'
    out[#out + 1] = position
    out[#out + 1] = wait
  else
    local until_ms = redis.call('ZSCORE', B .. 'q:act', tok)
    if until_ms then
      out[#out + 1] = 'A'
      out[#out + 1] = tonumber(until_ms)
    else
      out[#out + 1] = 'E'
      out[#out + 1] = 0
    end
    out[#out + 1] = 0
  end
end
return out
