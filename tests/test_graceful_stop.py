"""SIGTERM to gunicorn lets an in-flight request finish before the server exits (issue 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from tests.helpers import API, PASSWORD, LiveServer
from tests.live_http import call

pytestmark = pytest.mark.e2e


@pytest.mark.both_servers
def test_sigterm_lets_the_in_flight_request_finish(database_url, db, tmp_path):
    # Cost 14 makes one register take about a second; one worker, so the request that is in
    # flight is surely on the worker that already answered the health check.
    server = LiveServer(database_url, tmp_path / "serve.log",
                        BCRYPT_ROUNDS="14", WEB_CONCURRENCY="1").start()
    try:
        deadline = time.monotonic() + 120
        while call(server, "GET", f"{API}/health").status != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)

        result: dict = {}

        def register() -> None:
            try:
                result["reply"] = call(server, "POST", f"{API}/auth/register", data={
                    "email": f"sigterm-{uuid.uuid4().hex[:8]}@example.com",
                    "password": PASSWORD,
                })
            except Exception as exc:  # reported by the assertion below
                result["error"] = exc

        client = threading.Thread(target=register)
        started = time.monotonic()
        client.start()
        time.sleep(0.3)
        assert client.is_alive(), "the register finished before SIGTERM: nothing was in flight"
        os.kill(server.proc.pid, signal.SIGTERM)

        client.join(30)
        assert not client.is_alive()
        assert "error" not in result, (result, server.log()[-3000:])
        reply = result["reply"]
        assert reply.status == 201, (reply.status, reply.text)
        assert reply.json["message"] == "successfully registered"
        assert time.monotonic() - started > 0.3

        try:
            code = server.proc.wait(30)  # exits by itself, no SIGKILL needed
        except subprocess.TimeoutExpired:
            pytest.fail("gunicorn did not exit after SIGTERM:\n" + server.log()[-3000:])
        assert code == 0, server.log()[-3000:]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
