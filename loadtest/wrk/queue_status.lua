-- wrk: GET /v1/queue/tokens/{token} for random tokens of one queue, the
-- request of the `poll` phase of loadtest/queue.js. WRK_FIXTURE names the
-- token file that queue.js wrote (one token a line).
--
--   WRK_FIXTURE=tokens.txt wrk -t1 -c64 -d15s -s loadtest/wrk/queue_status.lua http://127.0.0.1:8080

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local fixture = os.getenv("WRK_FIXTURE")
assert(fixture, "WRK_FIXTURE is not set")
-- Every request is built once here, so that wrk spends per request what it
-- spends on the static `GET /healthz` it is compared with.
local requests = {}
for line in io.lines(fixture) do
  if #line > 0 then requests[#requests + 1] = wrk.format("GET", "/v1/queue/tokens/" .. line) end
end
assert(#requests > 0, "no tokens in WRK_FIXTURE")

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return requests[math.random(#requests)]
end
