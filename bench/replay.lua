-- wrk script: the same POST /api/v1/widgets with the same Idempotency-Key, over and over, after
-- bench/run.py made the first one: every request is a replay (one statement, nothing written).
-- Key and name from BENCH_RUN (as bench/run.py sent them). The admin's token from BENCH_TOKEN.
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "r"
local body = '{"name": "replay-' .. run .. '", "info_url": "https://www.example.com/r", '
             .. '"deadline": "2099-12-31"}'

request = function()
  return wrk.format("POST", "/api/v1/widgets", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. run,
  }, body)
end
