"""etcd: Patroni's store (the leader lock, the cluster's configuration), with authentication
on so that no local user can write either."""

from __future__ import annotations

import base64
from pathlib import Path

from widgetsvc.ops.cluster.loopback import http_json, post_json
from widgetsvc.ops.cluster.packages import which
from widgetsvc.ops.cluster.part import Log, Part
from widgetsvc.ops.cluster.render import render
from widgetsvc.ops.cluster.state import (
    ETCD_PREFIX,
    HOST,
    NODES,
    PATRONI_USER,
    SCOPE,
    ClusterError,
)


class Etcd(Part):
    name = label = "etcd"

    def ports(self) -> list[int]:
        return [self.state.ports["etcd_client"], self.state.ports["etcd_peer"]]

    @property
    def config_path(self) -> Path:
        return self.state.root / "etcd.yml"

    def render(self) -> bool:
        ports = self.state.ports
        return self.state.config(self.config_path, render(
            "etcd/etcd.yml.template", name="etcd1",
            data_dir=self.state.private_dir(self.state.root / "etcd"), host=HOST,
            client_port=ports["etcd_client"], peer_port=ports["etcd_peer"],
            token=self.state.secrets["etcd_token"]))

    def reload(self) -> None:
        """Its ports and token are fixed when the cluster is made: nothing to take."""

    def argv(self) -> list[str]:
        return [which("etcd"), "--config-file", str(self.config_path)]

    def ready(self) -> bool:
        return http_json(f"http://{HOST}:{self.state.ports['etcd_client']}/health").get(
            "health") == "true"

    def up(self, log: Log, *, wait: bool = True) -> bool:
        started = super().up(log, wait=True)
        self.secure(log)
        return started

    def secure(self, log: Log) -> None:
        """Authentication on (once; it is kept in etcd's data): a root user, and a
        ``patroni`` user that may read and write Patroni's keys alone. Without it any local
        user could write the leader lock or the cluster's configuration."""
        keys = self.state.secrets
        answer = post_json(self.state.etcd_url("auth/authenticate"),
                           {"name": "root", "password": keys["etcd_root"]})
        if "token" in answer:
            return
        if "not enabled" not in answer.get("error", ""):
            raise ClusterError(f"etcd authentication: {answer.get('error', answer)}")
        log("cluster: enabling etcd authentication")
        for node in NODES:  # a cluster made before: its Patroni would lose etcd (restarted)
            if self.state.alive(f"patroni-{node}"):
                log(f"cluster: stopping Patroni {node}: it restarts with etcd's credentials")
                self.state.stop_process(f"patroni-{node}", timeout=60)
        prefix = ETCD_PREFIX.encode()
        grant = {"permType": "READWRITE", "key": base64.b64encode(prefix).decode(),
                 "range_end": base64.b64encode(prefix[:-1] + bytes([prefix[-1] + 1])).decode()}
        for path, body in (
            ("auth/user/add", {"name": "root", "password": keys["etcd_root"]}),
            ("auth/role/add", {"name": "root"}),
            ("auth/user/grant", {"user": "root", "role": "root"}),
            ("auth/role/add", {"name": PATRONI_USER}),
            ("auth/role/grant", {"name": PATRONI_USER, "perm": grant}),
            ("auth/user/add", {"name": PATRONI_USER, "password": keys["etcd_patroni"]}),
            ("auth/user/grant", {"user": PATRONI_USER, "role": PATRONI_USER}),
            ("auth/enable", {}),
        ):
            answer = post_json(self.state.etcd_url(path), body)
            error = answer.get("error", "")
            if error and "already exists" in error and path == "auth/user/add":
                answer = post_json(self.state.etcd_url("auth/user/changepw"), body)  # half set up
                error = answer.get("error", "")
            if error and "already" not in error:
                raise ClusterError(f"etcd {path}: {error}")

    def forget_patroni(self) -> None:
        """Delete Patroni's keys (leader, history, last position), as root: a restore's
        data must not meet the old leader's last position."""
        answer = post_json(self.state.etcd_url("auth/authenticate"),
                           {"name": "root", "password": self.state.secrets["etcd_root"]})
        token = answer.get("token")
        if not token:
            raise ClusterError(f"etcd authentication: {answer.get('error', answer)}")
        prefix = f"{ETCD_PREFIX}{SCOPE}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        answer = post_json(self.state.etcd_url("kv/deleterange"),
                           {"key": base64.b64encode(prefix).decode(),
                            "range_end": base64.b64encode(end).decode()},
                           headers={"Authorization": token})
        if "error" in answer:
            raise ClusterError(f"etcd deleterange: {answer['error']}")
