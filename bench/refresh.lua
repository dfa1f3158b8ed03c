-- wrk script: POST /api/v1/auth/refresh, following each session's chain of refresh tokens.
-- BENCH_REFRESH_TOKENS holds fresh refresh tokens (comma-separated, more than connections);
-- every answer carries its session's next token, which goes back in the queue, so no token is
-- ever presented twice (a reuse would revoke its session: a 401, counted as an error).
local queue = {}
for token in string.gmatch(os.getenv("BENCH_REFRESH_TOKENS") or "", "[^,]+") do
  table.insert(queue, token)
end

request = function()
  local token = table.remove(queue, 1) or "queue-exhausted-this-token-is-unknown-000000"
  return wrk.format("POST", "/api/v1/auth/refresh", {["Content-Type"] = "application/json"},
                    '{"refresh_token": "' .. token .. '"}')
end

response = function(status, headers, body)
  local token = string.match(body, '"refresh_token": *"([A-Za-z0-9_-]+)"')
  if token then
    table.insert(queue, token)
  end
end
