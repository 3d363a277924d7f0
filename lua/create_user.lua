-- create_user: KEYS[1] wallet base "{u:<bucket>}:"; ARGV[1] user id,
-- ARGV[2] name, ARGV[3] api key hash (hex sha-256).
-- Returns the user JSON. O(1). The wallet starts at balance 0, version 0.
local uid, name, key_hash = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local w = B .. 'w:' .. uid
if redis.call('EXISTS', w) == 1 then
  return redis.error_reply('user ' .. uid .. ' exists')
end
redis.call('HSET', w, 'name', name, 'key_hash', key_hash, 'created_at', now, 'balance', 0, 'version', 0)
local d = emit('user', { id = tonumber(uid), name = name, key_hash = key_hash, created_at = now })
return d
