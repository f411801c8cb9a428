-- GET /accounts/{id} on one of $BENCH_ACCOUNTS accounts named r-1..r-N
-- (scripts/bench deposits on them first); $BENCH_TOKEN as in post.lua.
dofile("bench/wrk_report.lua")

local accounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "1000")
local token = os.getenv("BENCH_TOKEN")
local headers = {}
if token then headers["Authorization"] = "Bearer " .. token end

function request()
   return wrk.format("GET", "/accounts/r-" .. math.random(1, accounts), headers)
end
