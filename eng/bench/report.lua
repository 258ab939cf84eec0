-- wrk: one machine-readable line at the end of a run.
-- RESULT <requests/s> <p99 latency in µs> <socket errors> <non-2xx/3xx answers> <requests>
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d\n", summary.requests / seconds, latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests))
end
