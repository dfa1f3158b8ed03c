"""``bin/cluster`` end to end (issue 12): etcd, PostgreSQL x 2 under Patroni, HAProxy, PgBouncer,
2 instances and nginx (and its monitoring), brought up once for the run (``cluster_dir`` in
tests/conftest.py, shared with tests/test_cluster_metrics.py and test_cluster_upgrade.py) and
down (purged) by the last test here, which runs after every other test using it.

The failure drills are ``bin/failover`` (scripts/failover.py), run here as a user would and
judged on the JSON they print: kill -9 of an instance's gunicorn master under reads, loss of the
synchronous standby under writes, and 5 trials of kill -9 of the leader's postmaster under 8
writing clients. Select this module alone with ``bin/test tests/test_cluster.py`` (about 3 to 4
minutes on 2 cores); ``bin/test -m "not slow"`` leaves it out.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import psycopg
import pytest

from tests.helpers import API, PASSWORD
from tests.helpers_cluster import (
    CLUSTER,
    ENV,
    FAILOVER,
    SECRET,
    gone,
    processes_of,
    run,
    status,
)
from tests.live_http import call
from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops import localdb, plumbing
from widgetsvc.ops.cluster.hacluster import HACluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUERIES = load_queries(SQL_DIR / "testing")


def port_of(url: str) -> int:
    return urlsplit(url).port


def set_admin(cluster_dir: Path, email: str, admin: bool) -> None:
    with psycopg.connect(HACluster(cluster_dir).leader_url(), autocommit=True) as conn:
        conn.execute(QUERIES["cluster_set_admin"], {"admin": admin, "email": email})


def test_status_names_every_part_and_patroni_roles(cluster_dir):
    info = status(cluster_dir)
    assert info["front"].startswith("http://127.0.0.1:")
    assert len(info["instances"]) == 2
    assert all(i["pid"] and i["url"].startswith("http://127.0.0.1:") for i in info["instances"])
    roles = sorted(p["role"] for p in info["postgres"])
    assert roles == ["leader", "sync_standby"], info["postgres"]
    for node in info["postgres"]:
        assert set(node) >= {"name", "role", "postmaster_pid", "port"}
        assert node["postmaster_pid"] and Path(f"/proc/{node['postmaster_pid']}").exists()
    # Every part on its own loopback port; none shared.
    ports = [port_of(info["front"]), *(port_of(i["url"]) for i in info["instances"]),
             *(p["port"] for p in info["postgres"])]
    assert len(set(ports)) == len(ports)
    # Commits wait for the standby: synchronous replication is on.
    with psycopg.connect(HACluster(cluster_dir).leader_url("postgres", "postgres")) as conn:
        standby = next(p["name"] for p in info["postgres"] if p["role"] == "sync_standby")
        assert conn.execute("SHOW synchronous_standby_names").fetchone()[0] == standby


def http(method: str, url: str, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    """One request; (status, JSON body) whatever the status."""
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip().startswith(b"{") else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.strip().startswith(b"{") else {}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_patronis_rest_api_refuses_unauthenticated_changes(cluster_dir):
    """Issue 18: any local user could PATCH /config (synchronous mode off) or switch over."""
    cluster = HACluster(cluster_dir)
    rest = cluster.rest_url(0)
    for headers in ({}, basic("patroni", "wrong-password")):
        code, _ = http("PATCH", f"{rest}/config", {"synchronous_mode": False}, headers)
        assert code == 401
        leader = next(m["name"] for m in cluster.members() if m["role"] == "leader")
        code, _ = http("POST", f"{rest}/switchover", {"leader": leader}, headers)
        assert code == 401
    code, config = http("GET", f"{rest}/config")
    assert (code, config["synchronous_mode"]) == (200, True)  # unchanged
    # bin/cluster's credentials (0600 state) do work: the same value again changes nothing.
    code, config = http("PATCH", f"{rest}/config", {"synchronous_mode": True},
                        cluster.rest_auth)
    assert (code, config["synchronous_mode"]) == (200, True)
    assert oct(cluster.state_path.stat().st_mode & 0o777) == "0o600"


def test_etcd_refuses_unauthenticated_writes(cluster_dir):
    cluster = HACluster(cluster_dir)
    key = base64.b64encode(b"/service/widgetsvc/leader").decode()
    code, answer = http("POST", cluster.etcd_url("kv/put"),
                        {"key": key, "value": base64.b64encode(b"intruder").decode()})
    assert code != 200 and "user name is empty" in answer["error"], answer
    code, answer = http("POST", cluster.etcd_url("auth/authenticate"),
                        {"name": "root", "password": "guess"})
    assert code != 200 and "authentication failed" in answer["error"], answer
    # The leader lock is still Patroni's: root (bin/cluster's secret) reads it.
    code, answer = http("POST", cluster.etcd_url("auth/authenticate"),
                        {"name": "root", "password": cluster.state["secrets"]["etcd_root"]})
    assert code == 200, answer
    code, answer = http("POST", cluster.etcd_url("kv/range"), {"key": key},
                        {"Authorization": answer["token"]})
    leader = next(m["name"] for m in cluster.members() if m["role"] == "leader")
    assert base64.b64decode(answer["kvs"][0]["value"]).decode() == leader
    # Patroni's own etcd user may touch nothing outside its prefix.
    code, answer = http("POST", cluster.etcd_url("auth/authenticate"),
                        {"name": "patroni", "password": cluster.state["secrets"]["etcd_patroni"]})
    code, answer = http("POST", cluster.etcd_url("kv/put"),
                        {"key": base64.b64encode(b"/elsewhere").decode(), "value": ""},
                        {"Authorization": answer["token"]})
    assert "permission denied" in answer.get("error", ""), answer


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has privileges to drop")
def test_the_instances_run_unprivileged(cluster_dir):
    for instance in status(cluster_dir)["instances"]:
        master = instance["pid"]
        workers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                   and _ppid(int(p.name)) == master]
        assert workers
        assert {_uid(pid) for pid in workers} == {localdb.cluster_owner().pw_uid}


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _uid(pid: int) -> int:
    status_text = Path(f"/proc/{pid}/status").read_text()
    return int(status_text.split("Uid:")[1].split()[0])


def test_env_is_enough_for_add_user_and_migrate(cluster_dir):
    script = (f'eval "$({shlex.quote(CLUSTER)} --dir {shlex.quote(str(cluster_dir))} env)" && '
              f"printf '%s\\n' {PASSWORD} | bin/add-user --admin --password-stdin "
              "env-admin@example.com && bin/migrate")
    result = run("bash", "-c", script)
    assert "Successfully added new admin user" in result.stdout
    front = status(cluster_dir)["front"]
    reply = call(urlsplit(front), "POST", f"{API}/auth/login",
                 data={"email": "env-admin@example.com", "password": PASSWORD})
    assert reply.status == 200, reply.raw


class Alternating:
    """Sends each request to the next target in turn (instance 1, instance 2, ...)."""

    def __init__(self, urls: list[str]):
        self.ports = [port_of(u) for u in urls]
        self.calls = 0

    def __call__(self, method: str, path: str, **kwargs):
        port = self.ports[self.calls % len(self.ports)]
        self.calls += 1
        return call(port, method, path, **kwargs)


@pytest.mark.parametrize("route", ["alternating instances", "front"])
def test_the_whole_api_agrees_across_instances(cluster_dir, route):
    info = status(cluster_dir)
    urls = [i["url"] for i in info["instances"]] if route == "alternating instances" \
        else [info["front"]]
    send = Alternating(urls)
    tag = "alt" if route != "front" else "front"
    email, admin_email = f"{tag}-user@example.com", f"{tag}-admin@example.com"

    reply = send("POST", f"{API}/auth/register", data={"email": email, "password": PASSWORD})
    assert reply.status == 201, reply.raw
    # Every instance signs with the SECRET_KEY bin/cluster up was given.
    assert jwt.decode(reply.json["access_token"], SECRET, algorithms=["HS256"])["sub"]
    reply = send("POST", f"{API}/auth/register",
                 data={"email": admin_email, "password": PASSWORD})
    assert reply.status == 201
    set_admin(cluster_dir, admin_email, True)
    user = send("POST", f"{API}/auth/login", data={"email": email, "password": PASSWORD})
    admin = send("POST", f"{API}/auth/login", data={"email": admin_email, "password": PASSWORD})
    assert user.status == admin.status == 200
    user_token, admin_token = user.json["access_token"], admin.json["access_token"]

    assert send("GET", f"{API}/auth/user", token=user_token).json["email"] == email
    widget = {"name": f"{tag}-w1", "info_url": "https://example.com", "deadline": "2099-01-01"}
    assert send("POST", f"{API}/widgets", data=widget, token=user_token).status == 403
    reply = send("POST", f"{API}/widgets", data=widget, token=admin_token)
    assert reply.status == 201, reply.raw
    assert send("GET", f"{API}/widgets/{tag}-w1", token=user_token).json["name"] == f"{tag}-w1"
    page = send("GET", f"{API}/widgets?page=1&per_page=100", token=user_token)
    assert page.status == 200 and f"{tag}-w1" in [w["name"] for w in page.json["items"]]
    reply = send("PUT", f"{API}/widgets/{tag}-w1", token=admin_token,
                 data={"info_url": "https://example.org", "deadline": "2099-02-02"})
    assert reply.status == 200, reply.raw
    reply = send("GET", f"{API}/widgets/{tag}-w1", token=user_token)
    assert reply.json["info_url"] == "https://example.org"
    assert send("DELETE", f"{API}/widgets/{tag}-w1", token=admin_token).status == 204
    assert send("GET", f"{API}/widgets/{tag}-w1", token=user_token).status == 404

    # A logout on one instance is honoured by the next request, wherever it lands.
    assert send("POST", f"{API}/auth/logout", token=user_token).status == 200
    for _ in urls:
        reply = send("GET", f"{API}/auth/user", token=user_token)
        assert reply.status == 401
        assert reply.json["message"] == "Token blacklisted. Please log in again."

    # A demotion is honoured at once, by every instance, with the token issued before it.
    assert send("GET", f"{API}/auth/user", token=admin_token).json["admin"] is True
    set_admin(cluster_dir, admin_email, False)
    for _ in urls:
        reply = send("POST", f"{API}/widgets", token=admin_token,
                     data={**widget, "name": f"{tag}-w2"})
        assert reply.status == 403, reply.raw


def test_auth_rate_limit_reaches_the_front(cluster_dir):
    """``AUTH_RATE_LIMIT`` in the environment of ``up`` is the front's per-address limit."""
    front = port_of(status(cluster_dir)["front"])
    try:
        run(CLUSTER, "--dir", str(cluster_dir), "up", env={**ENV, "AUTH_RATE_LIMIT": "2"})
        statuses = [call(front, "POST", f"{API}/auth/register", data={}).status
                    for _ in range(20)]
        assert 429 in statuses and 400 in statuses, statuses
    finally:
        run(CLUSTER, "--dir", str(cluster_dir), "up")
    statuses = [call(front, "POST", f"{API}/auth/register", data={}).status for _ in range(20)]
    assert set(statuses) == {400}, statuses


def test_the_login_lock_is_per_client_address_through_the_front(cluster_dir):
    """The front reaches the instances over TCP: they take the client's address from its
    X-Forwarded-For (FORWARDED_ALLOW_IPS), so an attacker at 127.0.0.2 locks only itself."""
    front = port_of(status(cluster_dir)["front"])
    credentials = {"email": "lock-owner@example.com", "password": PASSWORD}
    assert call(front, "POST", f"{API}/auth/register", data=credentials).status == 201
    wrong = {**credentials, "password": "Wrong-pass-1"}
    statuses = [call(front, "POST", f"{API}/auth/login", data=wrong, source="127.0.0.2").status
                for _ in range(6)]
    assert statuses == [401] * 5 + [429], statuses
    assert call(front, "POST", f"{API}/auth/login", data=credentials,
                source="127.0.0.1").status == 200


def drill(cluster_dir: Path, *args: str, timeout: float = 600) -> dict:
    result = run(FAILOVER, "--dir", str(cluster_dir), *args, timeout=timeout, check=False)
    print(result.stderr[-3000:])
    assert result.stdout.strip(), result.stderr[-4000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, outcome
    return outcome


def test_killing_an_instance_fails_no_read(cluster_dir):
    before = {i["pid"] for i in status(cluster_dir)["instances"]}
    outcome = drill(cluster_dir, "instance", "--seconds", "6")
    assert outcome["failed_reads"] == 0
    assert sum(outcome["reads"].values()) > 100
    assert outcome["writes_after_kill"] > 0 and outcome["lost"] == 0
    # In-flight writes that failed are reported, not hidden (they may be 0).
    print(f"writes that failed when the instance died: {outcome['failed_writes']}")
    # bin/failover ran bin/cluster up again: a new master, both instances serving.
    after = status(cluster_dir)["instances"]
    assert all(i["pid"] for i in after) and outcome["killed_pid"] not in {i["pid"] for i in after}
    assert before - {outcome["killed_pid"]} <= {i["pid"] for i in after}


def test_losing_the_standby_writes_go_on(cluster_dir):
    ports = HACluster(cluster_dir).state["ports"]
    outcome = drill(cluster_dir, "standby", "--seconds", "2")
    # bin/failover's ``up`` restarted the standby's Patroni on its own ports (in TIME_WAIT
    # then), and so Prometheus's targets stayed the same.
    assert HACluster(cluster_dir).state["ports"] == ports
    assert outcome["writes_go_on_s"] is not None and outcome["writes_go_on_s"] <= 15
    assert outcome["acknowledged_after_kill"] > 0 and outcome["lost"] == 0
    # Meanwhile the leader did not wait for anyone (the trade-off: these writes are on one
    # server only until the standby is back).
    assert outcome["synchronous_standby_names_meanwhile"] == ""
    wait_for_sync_standby(cluster_dir)


def test_killing_the_leader_loses_no_acknowledged_write(cluster_dir):
    trials = int(os.environ.get("CLUSTER_FAILOVER_TRIALS", "5"))
    outcome = drill(cluster_dir, "leader", "--trials", str(trials), timeout=300 + 120 * trials)
    times = outcome["writes_back_s"]
    print(f"writes back after kill -9 of the leader over {trials} trials: {times}; "
          f"acknowledged {outcome['acknowledged']}, lost {outcome['lost']}, "
          f"failed writes {outcome['failed_writes']}")
    assert outcome["lost"] == 0 and outcome["acknowledged"] > 0
    assert times["max"] <= 15
    assert all(t["revoked_token_still_revoked"] for t in outcome["trials"])
    assert all(t["new_leader"] != t["killed"] for t in outcome["trials"])
    # The last killed leader came back as a replica, and bin/cluster status says so.
    killed = outcome["trials"][-1]["killed"]
    shown = {p["name"]: p["role"] for p in status(cluster_dir)["postgres"]}
    assert shown[killed] in ("replica", "sync_standby"), shown
    text = run(CLUSTER, "--dir", str(cluster_dir), "status").stdout
    assert killed in text and "leader" in text
    wait_for_sync_standby(cluster_dir)  # the tests after this one find the cluster whole


def who_listens(cluster_dir: Path) -> str:
    """Every port of the cluster's state.json and the processes listening there."""
    def flat(value) -> list[int]:
        if isinstance(value, dict):
            return [p for v in value.values() for p in flat(v)]
        return [p for v in value for p in flat(v)] if isinstance(value, list) else [value]

    ports = HACluster(cluster_dir).state["ports"]
    return "\n".join(f"{port}: {plumbing.listeners(port)}" for port in sorted(flat(ports)))


def wait_for_sync_standby(cluster_dir: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    def whole() -> bool:
        nodes = status(cluster_dir)["postgres"]
        return (sorted(p["role"] for p in nodes) == ["leader", "sync_standby"]
                and all(p["state"] in ("running", "streaming") for p in nodes))

    while not whole():
        assert time.monotonic() < deadline, status(cluster_dir)["postgres"]
        time.sleep(1)


@pytest.mark.stops_cluster
def test_down_leaves_no_process_and_up_comes_back(cluster_dir):
    """Every part stops, the monitoring too (Prometheus and its exporters are recorded parts),
    and the data stays for the next ``up``."""
    cluster = HACluster(cluster_dir)
    assert {"prometheus", "nginx-exporter", "node-exporter", "postgres-exporter-pg1",
            "postgres-exporter-pg2"} <= set(cluster.pids)
    groups = cluster.all_groups()
    assert processes_of(cluster_dir, groups), "the check must see the running cluster"
    run(CLUSTER, "--dir", str(cluster_dir), "down")
    assert gone(cluster_dir, groups) == []
    assert run(CLUSTER, "--dir", str(cluster_dir), "status", check=False).returncode == 3
    # The data stays (only --purge deletes it): up again, and the earlier user is still there.
    run(CLUSTER, "--dir", str(cluster_dir), "up", timeout=600)
    front = port_of(status(cluster_dir)["front"])
    deadline = time.monotonic() + 60  # until the front's instances answer (not a 502)
    while (reply := call(front, "POST", f"{API}/auth/login", data={
            "email": "front-user@example.com", "password": PASSWORD})).status in (502, 503):
        assert time.monotonic() < deadline, reply.raw
        time.sleep(0.5)
    if reply.status != 200:  # which parts, on which ports, and who listens there
        pytest.fail(f"{reply.status} {reply.raw!r}\n{json.dumps(status(cluster_dir), indent=1)}"
                    f"\n{who_listens(cluster_dir)}")
    groups = HACluster(cluster_dir).all_groups()
    run(CLUSTER, "--dir", str(cluster_dir), "down", "--purge")
    assert gone(cluster_dir, groups) == []
    assert not cluster_dir.exists()
