-- POST /batch of $BENCH_BATCH deposits on 1000 accounts. The same body every
-- time: without ids or an Idempotency-Key each request is a new atomic append.
dofile("bench/wrk_report.lua")

local size = tonumber(os.getenv("BENCH_BATCH") or "100")
local commands = {}
for i = 0, size - 1 do
   commands[#commands + 1] = string.format('{"account":"b-%d","amount":%d}', i % 1000, i + 1)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN") end
wrk.body = '{"commands":[' .. table.concat(commands, ",") .. ']}'
