-- create_concert: KEYS[1] concert base "{c:<id>}:"; ARGV[1] concert JSON
-- {id,title,artist,venue,description,created_at,schedules:[{id,starts_at,
-- booking_opens_at,seat_count,price,purchase_limit}]} (times in ms).
-- Returns "OK". O(total seats / 8k): each seat map is one SET.
local c = cjson.decode(ARGV[1])
c.created_at = now_ms()
for _, s in ipairs(c.schedules) do
  local sid = int(s.id)
  redis.call('HSET', B .. 's:' .. sid, 'starts_at', int(s.starts_at), 'opens_at', int(s.booking_opens_at),
    'seat_count', s.seat_count, 'price', int(s.price), 'limit', s.purchase_limit, 'avail', s.seat_count)
  redis.call('SET', B .. 'seats:' .. sid, string.rep('A', s.seat_count))
end
emit('concert', c)
return 'OK'
