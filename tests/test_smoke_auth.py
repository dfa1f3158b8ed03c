from tests.conftest import API, PASSWORD, bearer


def test_register_login_user_logout(app):
    r = app.post_json(f"{API}/auth/register", {"email": "A@Example.com", "password": PASSWORD},
                      status=201)
    assert r.json["message"] == "successfully registered"
    token = app.post(f"{API}/auth/login", {"email": "a@example.com", "password": PASSWORD}
                     ).json["access_token"]
    assert app.get(f"{API}/auth/user", headers=bearer(token)).json["email"] == "A@Example.com"
    app.post(f"{API}/auth/logout", headers=bearer(token), status=200)
    r = app.get(f"{API}/auth/user", headers=bearer(token), status=401)
    assert r.json == {"message": "Token blacklisted. Please log in again."}
