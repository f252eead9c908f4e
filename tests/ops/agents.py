"""aiocluster-node processes for the ops tests, and HTTP to them.

Standard library only, so the tests run on Debian's /usr/bin/python3. Every
wait polls with a generous deadline: the tests assert outcomes, never speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

PATIENCE = 60.0  # seconds; a loaded CI machine runs sanitizer builds slowly
T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], Optional[T]], timeout: float = PATIENCE) -> T:
    """Calls probe until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            last_error = error
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def tool(name: str) -> str:
    """The path of a program the tests need, or a failure saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed (./dev deps installs it)")
    return path


def end_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Sends `sig`, waits, kills if it outlives the patience; the exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Agent:
    """One aiocluster-node with --http on an ephemeral port."""

    def __init__(self, binary: str, name: str, args: list[str], log_dir: str) -> None:
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.err")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--name", name, "--http", "127.0.0.1:0", "--report-ms", "3600000", *args],
                stdout=subprocess.DEVNULL, stderr=log)
        self.port = wait_until(f"{name} to serve HTTP", self._announced_port)

    def _announced_port(self) -> Optional[int]:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited early: {self.log()}")
        found = re.search(r"http on [^ ]*:(\d+) ", self.log())
        return int(found.group(1)) if found else None

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict[str, str]] = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PATIENCE)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            reply = connection.getresponse()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()},
                            reply.read())
        finally:
            connection.close()

    def get_json(self, path: str) -> dict:
        response = self.request("GET", path)
        if response.status != 200:
            raise ValueError(f"GET {path}: {response.status} {response.body!r}")
        return response.json()

    def metrics(self) -> dict[str, float]:
        """The samples of /metrics by their full name, labels included."""
        text = self.request("GET", "/metrics").body.decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def live_names(self) -> set[str]:
        cluster = self.get_json("/v1/cluster")
        return {m["name"] for m in cluster["members"] if m["state"] == "live"}

    def stop(self) -> int:
        """SIGTERM, then the exit status (0 for a clean, leak-free exit)."""
        return end_process(self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Cluster:
    """Agents seeded in a ring, gossiping every 100 ms over TCP."""
    binary: str
    log_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="aiocluster-ops-"))
    agents: list[Agent] = field(default_factory=list)

    def start(self, drivers: list[str], cluster_id: str, extra: Optional[list[str]] = None) -> None:
        ports = [free_port() for _ in drivers]
        for i, driver in enumerate(drivers):
            name = f"agent{i + 1}"
            seed = ports[(i - 1) % len(ports)]
            self.agents.append(Agent(self.binary, name, [
                "--listen", f"127.0.0.1:{ports[i]}", "--seed", f"127.0.0.1:{seed}",
                "--cluster-id", cluster_id, "--gossip-interval-ms", "100",
                "--driver", driver, "--kv", f"role=role-of-{name}", *(extra or [])],
                self.log_dir))

    def wait_converged(self) -> None:
        names = {a.name for a in self.agents}
        for agent in self.agents:
            wait_until(f"{agent.name} to see {sorted(names)} live",
                       lambda agent=agent: agent.live_names() == names)

    def stop(self) -> dict[str, int]:
        return {a.name: a.stop() for a in self.agents}


def parse_args() -> argparse.Namespace:
    """The flags every ops test takes; the rest goes to unittest."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True, help="the aiocluster-node binary")
    parser.add_argument("--driver", default="asio", choices=["asio", "libevent"])
    parser.add_argument("--out", default=".", help="where to leave artifacts")
    args, rest = parser.parse_known_args()
    sys.argv[1:] = rest
    return args
