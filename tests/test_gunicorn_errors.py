"""gunicorn's parse-error answers as JSON (widgetsvc/ops/gunicorn_errors.py) replace a gunicorn
function that is not public API: the pin in setup.cfg and these checks make an upgrade that
moves or changes it fail here, not silently in production."""

from __future__ import annotations

import configparser
import inspect
import json
import socket

import gunicorn
from gunicorn import util

from widgetsvc.ops import gunicorn_errors
from widgetsvc.ops.localdb import REPO_ROOT


def test_gunicorn_is_pinned_to_the_version_installed():
    parsed = configparser.ConfigParser()
    parsed.read(REPO_ROOT / "setup.cfg")
    requires = parsed["options"]["install_requires"].split()
    assert f"gunicorn=={gunicorn.__version__}" in requires


def test_the_replaced_functions_keep_their_signatures():
    assert list(inspect.signature(util.write_error).parameters) == list(
        inspect.signature(gunicorn_errors.write_json_error).parameters)
    assert list(inspect.signature(util.write_nonblock).parameters)[:2] == ["sock", "data"]


def test_the_answer_is_json_and_never_echoes_the_request(monkeypatch):
    monkeypatch.setattr(util, "write_error", util.write_error)  # undone after the test
    gunicorn_errors.install()
    assert util.write_error is gunicorn_errors.write_json_error
    ours, theirs = socket.socketpair()
    with ours, theirs:
        util.write_error(ours, 400, "Bad Request", "Invalid request line: '<script>'")
        ours.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: theirs.recv(65536), b"")).decode("latin-1")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400 Bad Request\r\n")
    assert "Content-Type: application/json" in head
    assert json.loads(body) == {"message": "Bad Request"}
    assert "script" not in answer
