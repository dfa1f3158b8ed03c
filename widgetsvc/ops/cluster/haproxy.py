"""HAProxy: one address for the database that always reaches the leader (Patroni's REST API
answers its check), and cuts the sessions of a server marked down."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import psycopg

from widgetsvc.db import SQL_DIR, load_queries
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.part import Part
from widgetsvc.ops.cluster.render import render
from widgetsvc.ops.cluster.state import HOST, NODES, SUPERUSER


class HAProxy(Part):
    name = "haproxy"

    def ports(self) -> list[int]:
        return [self.state.ports["haproxy"]]
    label = "HAProxy"

    @property
    def config_path(self) -> Path:
        return self.state.root / "haproxy.cfg"

    @property
    def stats_socket(self) -> Path:
        return self.state.root / "haproxy.sock"

    def render(self) -> bool:
        ports = self.state.ports
        servers = "\n".join(
            f"    server {node} {HOST}:{ports['postgres'][i]} maxconn 500 "
            f"check port {ports['patroni'][i]}"
            for i, node in enumerate(NODES))
        return self.state.config(self.config_path, render(
            "haproxy/haproxy.cfg.template", host=HOST, port=ports["haproxy"],
            servers=servers, stats_socket=self.stats_socket,
            rest_basic=self.state.rest_basic()))

    def argv(self) -> list[str]:
        return [which("haproxy"), "-db", "-f", str(self.config_path)]

    def servers(self) -> dict[str, str]:
        """HAProxy's view: server name -> "UP", "DOWN", "UP 1/2" ... (its stats socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        rows = list(csv.reader(raw.decode().lstrip("# ").splitlines()))
        header, body = rows[0], [r for r in rows[1:] if r]
        name, status = header.index("svname"), header.index("status")
        return {r[name]: r[status] for r in body if r[name] not in ("FRONTEND", "BACKEND")}

    def ready(self) -> bool:
        """HAProxy routes to the leader alone. It starts with every server up, until the
        first checks of the replica fail: a connection then could reach the replica."""
        leader = next((m["name"] for m in self.state.members() if m.get("role") == "leader"),
                      None)
        servers = self.servers()
        if leader is None or servers.get(leader) != "UP" or any(
                state != "DOWN" for name, state in servers.items() if name != leader):
            return False
        is_primary = load_queries(SQL_DIR / "cluster")["is_primary"]
        with psycopg.connect(self.state.leader_url(SUPERUSER, "postgres"), connect_timeout=2,
                             autocommit=True) as conn:
            return conn.execute(is_primary).fetchone()[0]
