"""The IETF httpapi draft's rate-limit headers from the front (docs/API.md §8.8): written by
nginx from the numbers its limit_req applies, so they agree with its 429s."""

from __future__ import annotations

import pytest

from tests.helpers import API
from tests.live_http import call
from tests.test_front_door import front_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def test_auth_answers_carry_the_policy_and_every_front_429_what_is_left(front_server):  # noqa: F811
    server = front_server(AUTH_RATE_LIMIT="6")  # one request per 10 s, a burst of 10
    replies = [call(server, "POST", f"{API}/auth/login", data={"email": "x"})
               for _ in range(14)]
    statuses = [r.status for r in replies]
    assert 400 in statuses and 429 in statuses, statuses
    assert statuses.index(429) > 0 and set(statuses[statuses.index(429):]) == {429}, statuses
    for reply in replies:
        assert reply.headers["RateLimit-Policy"] == '"auth";q=6;w=60', reply.status
    for reply in replies:
        if reply.status == 429:
            assert reply.headers["RateLimit"] == '"auth";r=0;t=10'
            assert reply.headers["Retry-After"] == "10"
        else:
            assert "RateLimit" not in reply.headers
    other = call(server, "GET", f"{API}/health")
    assert "RateLimit-Policy" not in other.headers  # only the limited requests


def test_no_rate_limit_no_headers(front_server):  # noqa: F811
    server = front_server(AUTH_RATE_LIMIT="0")
    reply = call(server, "POST", f"{API}/auth/login", data={"email": "x"})
    assert reply.status == 400
    assert "RateLimit-Policy" not in reply.headers and "RateLimit" not in reply.headers
