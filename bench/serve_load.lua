-- wrk script for bench/serve_load.py: POST one prepared body (multipart image or TF Serving JSON)
-- and print the results as one JSON line. The body is built by serve_load.py and named by env vars.
--   LENET_BODY=<file> LENET_CONTENT_TYPE=<type> LENET_PATH=/predict wrk -s serve_load.lua ...

local file = assert(io.open(os.getenv("LENET_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.path = os.getenv("LENET_PATH") or "/predict"
wrk.headers["Content-Type"] = os.getenv("LENET_CONTENT_TYPE")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
