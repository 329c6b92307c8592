-- wrk script: POST the prepared request bodies in turn, report the run as one JSON line.
-- Usage: wrk -s load.lua URL -- CONTENT_TYPE BODY_FILE [BODY_FILE ...]

local prepared = {}
local turn = 0

function init(args)
  local content_type = args[1]
  for i = 2, #args do
    local file = assert(io.open(args[i], "rb"))
    local body = file:read("*a")
    file:close()
    prepared[#prepared + 1] = wrk.format("POST", nil, { ["Content-Type"] = content_type }, body)
  end
  turn = math.random(#prepared)
end

function request()
  turn = turn % #prepared + 1
  return prepared[turn]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, ' ..
    '"max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
