-- wrk script: POST a new widget per request (unique names: BENCH_PREFIX-1, -2, ...).
-- Reads TOKEN (an admin's) and PREFIX from the environment; one wrk thread keeps names unique.
local token = os.getenv("BENCH_TOKEN") or ""
local prefix = os.getenv("BENCH_PREFIX") or "bench-create"
local i = 0
request = function()
  i = i + 1
  local body = '{"name": "' .. prefix .. '-' .. i .. '", "info_url": "https://example.com", '
    .. '"deadline": "2099-01-01"}'
  return wrk.format("POST", "/api/v1/widgets", {["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json"}, body)
end
