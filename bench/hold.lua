-- POST /transfers from a new account each time (the transaction needs an
-- --overdraft-limit for them to pay), to one account per thread: with
-- $BENCH_PENDING set, a hold ("pending": true), else a plain transfer, so
-- the two compare in one run. Keys as in post.lua.
dofile("bench/wrk_report.lua")

local pending = os.getenv("BENCH_PENDING")

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

function init(args)
   counter = 0
   prefix = string.format("%s-t%d-", os.getenv("BENCH_RUN") or "hold", tid)
end

function request()
   counter = counter + 1
   local from = prefix .. counter
   local body = string.format('{"from":"%s","to":"%ssink","amount":%d%s}', from, prefix,
                              counter % 1000 + 1, pending and ',"pending":true' or '')
   local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = from}
   return wrk.format("POST", "/transfers", headers, body)
end
