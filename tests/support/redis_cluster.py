"""A real Redis Cluster on loopback: three redis-server processes in cluster mode, the 16,384
slots spread over them by `redis-cli --cluster create`. For the frontier's partitioned layout,
whose partitions land on different nodes (docs/frontier.md)."""

from __future__ import annotations

import random
import socket
import subprocess
import time

from tests.support.ports import wait_for_port
from tests.support.redis_server import RedisServer

NODES = 3


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, so both fit under 65536."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        if all(_free(candidate) for candidate in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ClusterNode(RedisServer):
    def __init__(self, binary: str) -> None:
        super().__init__(binary)
        self.port = _cluster_port()

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "5000",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)


class RedisClusterServers:
    """`NODES` primaries, no replicas; `host`/`port` is the node clients start from."""

    def __init__(self, server_binary: str, cli_binary: str) -> None:
        self.cli = cli_binary
        self.nodes = [ClusterNode(server_binary) for _ in range(NODES)]
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()  # no node may outlive a cluster that did not come up
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [self._info(node.port).get("cluster_state") for node in self.nodes]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not come up: {states}")

    def _info(self, port: int) -> dict[str, str]:
        done = subprocess.run(
            [self.cli, "-p", str(port), "cluster", "info"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        pairs = (line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
        return {key.strip(): value.strip() for key, value in pairs}

    def close(self) -> None:
        for node in self.nodes:
            node.close()
