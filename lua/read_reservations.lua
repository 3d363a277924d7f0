-- read_reservations: KEYS[1] concert base; ARGV[1] user id, ARGV[2] "one"
-- with ARGV[3] reservation id, or "user" with ARGV[3] limit.
-- Lazy expiry applies, so a lapsed hold reads EXPIRED at once.
-- Returns {"OK", JSON...}: none when the id is unknown or not the user's.
-- O(k).
local uid, mode = ARGV[1], ARGV[2]
local now = now_ms()
local ids
if mode == 'one' then
  ids = { ARGV[3] }
else
  ids = redis.call('ZREVRANGE', B .. 'ur:' .. uid, 0, tonumber(ARGV[3]) - 1)
end
local out = { 'OK' }
for _, rid in ipairs(ids) do
  local r = load_res(rid, now)
  if r and int(r.user_id) == uid then
    if r.refund_started then r.refund_started = nil end
    out[#out + 1] = cjson.encode(r)
  end
end
return out
