-- POST /transactions: every request a deposit on a new account with its own
-- Idempotency-Key, so each one is a distinct durable event (no dedupe, no
-- conflicts). $BENCH_RUN keeps keys unique across runs on the same stack;
-- $BENCH_TOKEN, when set, goes into every request as a bearer token.
dofile("bench/wrk_report.lua")

local token = os.getenv("BENCH_TOKEN")

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
   local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = account}
   if token then headers["Authorization"] = "Bearer " .. token end
   return wrk.format("POST", "/transactions", headers, body)
end
