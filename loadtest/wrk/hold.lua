-- wrk: POST /v1/reservations of random seats for random users, the request
-- of loadtest/hold.js. WRK_FIXTURE names the file that hold.js wrote: a
-- first line "<concert id> <schedule id> <seats> <seats per hold>", then
-- "<user id> <api key> <queue token>" per user. Counts 409s apart from
-- other 4xx and 5xx. Also the request sent to examples/ceiling.rs.
--
--   WRK_FIXTURE=hold.txt wrk -t1 -c64 -d15s -s loadtest/wrk/hold.lua http://127.0.0.1:8080

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local fixture = os.getenv("WRK_FIXTURE")
assert(fixture, "WRK_FIXTURE is not set")
local file = assert(io.open(fixture))
local schedule, seats, per = file:read("*l"):match("^%d+ (%d+) (%d+) (%d+)")
seats, per = tonumber(seats), tonumber(per)
local users = {}
for line in file:lines() do
  local key, token = line:match("^%d+ (%S+) (%S+)")
  if key then users[#users + 1] = { key = "Bearer " .. key, token = token } end
end
file:close()
assert(#users > 0, "no users in WRK_FIXTURE")

c409, c4xx, c5xx = 0, 0, 0

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  local u = users[math.random(#users)]
  local pick, seen = {}, {}
  while #pick < math.min(per, seats) do
    local n = math.random(seats)
    if not seen[n] then
      seen[n] = true
      pick[#pick + 1] = n
    end
  end
  local body = '{"schedule_id":' .. schedule .. ',"seat_numbers":[' .. table.concat(pick, ",") .. "]}"
  return wrk.format("POST", "/v1/reservations", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = u.key,
    ["Queue-Token"] = u.token,
  }, body)
end

function response(status, headers, body)
  if status == 409 then
    c409 = c409 + 1
  elseif status >= 500 then
    c5xx = c5xx + 1
  elseif status >= 400 then
    c4xx = c4xx + 1
  end
end
