-- wrk script: POST /api/v1/auth/login with the bench user's credentials.
wrk.method = "POST"
wrk.body = '{"email": "' .. os.getenv("BENCH_EMAIL") .. '", "password": "' .. os.getenv("BENCH_PASSWORD") .. '"}'
wrk.headers["Content-Type"] = "application/json"
