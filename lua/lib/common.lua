-- Prelude of every script (not a script itself): KEYS[1] is the key base of
-- one hash tag, e.g. "tr:{c:42}:" or "tr:{u:7}:". Every key a script touches
-- is that base plus a suffix, so each script stays inside one cluster slot.
local B = KEYS[1]

-- Milliseconds since the epoch, from the Redis clock, so that servers with
-- skewed clocks agree on every expiry.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integer to decimal string (tostring would print 1e+15 for large numbers).
local function int(n)
  return string.format('%d', n)
end

local function jget(key)
  local v = redis.call('GET', key)
  if v then
    return cjson.decode(v)
  end
  return nil
end

-- Appends one event to the tag's stream, which the write-behind worker
-- projects into Postgres: one field, named by the kind, holding the JSON
-- state. Returns the JSON.
local function emit(kind, obj)
  local d = cjson.encode(obj)
  redis.call('XADD', B .. 'ev', '*', kind, d)
  return d
end

-- Stores a JSON document and appends it as an event, in one step.
local function put(key, kind, obj, ttl)
  local d = emit(kind, obj)
  if ttl then
    redis.call('SET', key, d, 'EX', ttl)
  else
    redis.call('SET', key, d)
  end
  return d
end
