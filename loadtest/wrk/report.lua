-- The end-of-run report shared by the wrk scripts: one line starting with
-- "WRK_JSON " that loadtest/run.sh reads. Scripts that define response()
-- also count 409s, other 4xx and 5xx per thread (read back here).

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

function done(summary, latency, requests)
  local counts = { c409 = 0, c4xx = 0, c5xx = 0 }
  for _, t in ipairs(threads) do
    for k in pairs(counts) do
      counts[k] = counts[k] + (t:get(k) or 0)
    end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local ms = function(p) return latency:percentile(p) / 1000 end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"rps":%.0f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"non_2xx_3xx":%d},'
      .. '"status_409":%d,"status_4xx_other":%d,"status_5xx":%d}\n',
    summary.requests, secs, summary.requests / secs, ms(50), ms(95), ms(99), latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, counts.c409, counts.c4xx, counts.c5xx))
end
