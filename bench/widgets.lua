-- wrk script: GET one widget per request, rotating over widget-1 .. widget-N.
-- Reads N and TOKEN from the environment.
local count = tonumber(os.getenv("BENCH_WIDGETS") or "1000")
local token = os.getenv("BENCH_TOKEN") or ""
local i = 0
request = function()
  i = (i % count) + 1
  return wrk.format("GET", "/api/v1/widgets/widget-" .. i, {["Authorization"] = "Bearer " .. token})
end
