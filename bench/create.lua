-- wrk script: each pair of requests creates a fresh widget (POST) and deletes it again
-- (DELETE), so the collection keeps its size. Names are unique per run (BENCH_RUN) and per
-- request. Reads the admin's token from BENCH_TOKEN.
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "r"
local auth = {["Authorization"] = "Bearer " .. token}
local i = 0
local pending = nil
request = function()
  if pending then
    local name = pending
    pending = nil
    return wrk.format("DELETE", "/api/v1/widgets/" .. name, auth)
  end
  i = i + 1
  local name = "bc-" .. run .. "-" .. i
  pending = name
  return wrk.format("POST", "/api/v1/widgets", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, '{"name": "' .. name .. '", "info_url": "https://www.example.com/new", '
     .. '"deadline": "2099-12-31"}')
end
