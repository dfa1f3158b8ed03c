-- wrk script: creates fresh widgets (POST) and deletes them again (DELETE), so the collection
-- keeps its size. A widget is deleted only once its 201 has come back (its name is read from
-- the Location header), whichever connection created it. Names are unique per run
-- (BENCH_RUN) and per request. Reads the admin's token from BENCH_TOKEN.
local token = os.getenv("BENCH_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "r"
local i = 0
local created = {}  -- names whose POST answered 201, oldest first

request = function()
  if #created > 0 then
    local name = table.remove(created, 1)
    return wrk.format("DELETE", "/api/v1/widgets/" .. name,
                      {["Authorization"] = "Bearer " .. token})
  end
  i = i + 1
  return wrk.format("POST", "/api/v1/widgets", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, '{"name": "bc-' .. run .. '-' .. i .. '", "info_url": "https://www.example.com/new", '
     .. '"deadline": "2099-12-31"}')
end

response = function(status, headers, body)
  if status == 201 then
    local location = headers["Location"] or headers["location"] or ""
    local name = string.match(location, "/api/v1/widgets/([^/]+)$")
    if name then
      created[#created + 1] = name
    end
  end
end
