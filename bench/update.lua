-- wrk script: PUT an existing widget per request (rotating over widget-1 .. widget-N), as an
-- admin: each is an update (200), never a create.
local count = tonumber(os.getenv("BENCH_WIDGETS") or "1000")
local token = os.getenv("BENCH_TOKEN") or ""
local i = 0
request = function()
  i = (i % count) + 1
  return wrk.format("PUT", "/api/v1/widgets/widget-" .. i, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, '{"info_url": "https://www.example.com/updated/' .. i .. '", "deadline": "2099-12-31"}')
end
