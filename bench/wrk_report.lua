-- Shared wrk done(): one machine-readable line for scripts/bench, and the
-- latency percentiles (ms) to $BENCH_PERCENTILES for the gnuplot chart.
local percentiles = {50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99}

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format(
      "BENCH requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f " ..
      "non2xx=%d socket_errors=%d\n",
      summary.requests, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency:percentile(99.9) / 1000, errors.status,
      errors.connect + errors.read + errors.write + errors.timeout))
   local path = os.getenv("BENCH_PERCENTILES")
   if path then
      local file = io.open(path, "w")
      for _, p in ipairs(percentiles) do
         file:write(string.format("%g %.3f\n", p, latency:percentile(p) / 1000))
      end
      file:close()
   end
end
