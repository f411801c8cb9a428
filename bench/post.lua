-- POST /transactions: every request a deposit on a new account with its own
-- Idempotency-Key, so each one is a distinct durable event (no dedupe, no
-- conflicts). $BENCH_RUN keeps keys unique across runs on the same stack.
dofile("bench/wrk_report.lua")

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

function init(args)
   counter = 0
   prefix = string.format("%s-t%d-", os.getenv("BENCH_RUN") or "post", tid)
end

function request()
   counter = counter + 1
   local account = prefix .. counter
   local body = string.format('{"account":"%s","amount":%d}', account, counter % 1000 + 1)
   return wrk.format("POST", "/transactions",
                     {["Content-Type"] = "application/json", ["Idempotency-Key"] = account},
                     body)
end
