-- wrk script: POST /transactions, a deposit on one of 1000 accounts with a
-- varying amount, so bodies differ (each request is a new event).
--   wrk -t2 -c64 -d10s --latency -s transaction/bench/deposit.lua http://127.0.0.1:3000
counter = 0
request = function()
   counter = counter + 1
   local body = string.format('{"account":"acct-%d","amount":%d}',
                              math.random(1, 1000), counter % 1000 + 1)
   return wrk.format("POST", "/transactions", {["Content-Type"] = "application/json"}, body)
end
