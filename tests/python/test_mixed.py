"""A mixed cluster: Python-package nodes in this process and aiocluster-node agents (the C++
drivers, Asio and libevent) in their own processes, over TCP on 127.0.0.1.

CTest gives the agent's path in AIOCLUSTER_NODE_AGENT; run by hand without it, the test is
skipped with that reason."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import eventually, fast_config, free_port

from aiocluster import Cluster, NodeId, SealingConfig

AGENT = os.environ.get("AIOCLUSTER_NODE_AGENT")


class AgentProcess:
    """One aiocluster-node, whose latest JSON report line is kept."""

    def __init__(self, name: str, port: int, seed: int, driver: str, *flags: str) -> None:
        self.name, self.port, self.driver, self.seed, self.flags = name, port, driver, seed, flags
        self.latest: Optional[dict[str, Any]] = None
        self._process: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional[asyncio.Task[None]] = None

    async def start(self) -> None:
        assert AGENT is not None
        self._process = await asyncio.create_subprocess_exec(
            AGENT, "--name", self.name, "--listen", f"127.0.0.1:{self.port}", "--seed", f"127.0.0.1:{self.seed}",
            "--cluster-id", "pytest", "--gossip-interval-ms", "50", "--fd-initial-interval-ms", "50",
            "--driver", self.driver, "--kv", f"role={self.name}", "--report-ms", "50", *self.flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            self.latest = json.loads(line)

    def sees(self, name: str, key: str, value: str) -> bool:
        report = self.latest
        return (report is not None and name in report["live"]
                and report["kv"].get(name, {}).get(key) == value)

    async def stop(self) -> None:
        """SIGTERM, as operators stop an agent; one that is still running 10 s later is killed
        and fails the test."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except asyncio.TimeoutError:
                self._process.kill()
                await self._process.wait()
                raise AssertionError(f"agent {self.name} did not exit within 10 s of SIGTERM")
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@pytest.mark.skipif(AGENT is None, reason="AIOCLUSTER_NODE_AGENT is not set (CTest sets it)")
async def test_python_nodes_and_agents_form_one_cluster() -> None:
    p1, p2, a1, a2 = (free_port() for _ in range(4))
    # Seeds chain the four: py1 -> asio-agent -> py2 -> libevent-agent -> py1.
    agents = [AgentProcess("asio-agent", a1, p2, "asio"), AgentProcess("libevent-agent", a2, p1, "libevent")]
    left: list[NodeId] = []
    py1 = Cluster(fast_config("py1", p1, [a1]), {"role": "py1"})
    py2 = Cluster(fast_config("py2", p2, [a2]), {"role": "py2"})

    async def on_leave(node: NodeId) -> None:
        left.append(node)

    py1.on_node_leave(on_leave)
    try:
        async with py1, py2:
            for agent in agents:
                await agent.start()
            names = {"py1", "py2", "asio-agent", "libevent-agent"}

            def python_views_converged() -> bool:
                """both Python nodes see all four live with their role keys"""
                for cluster in (py1, py2):
                    snap = cluster.snapshot()
                    live = {n.name for n in snap.live_nodes}
                    roles = {n.name: s.get("role") for n, s in snap.node_states.items() if n in snap.live_nodes}
                    if live != names or roles != {name: name for name in names}:
                        return False
                return True

            await eventually(python_views_converged, timeout=20)
            await eventually(lambda: all(agent.sees(py, "role", py) for agent in agents for py in ("py1", "py2")),
                             timeout=20)
            py2.set("fresh", "yes")
            await eventually(lambda: all(agent.sees("py2", "fresh", "yes") for agent in agents), timeout=20)

            await agents[1].stop()
            await eventually(lambda: any(n.name == "libevent-agent" for n in left), timeout=20)
            assert "libevent-agent" not in {n.name for n in py1.live_nodes()}
    finally:
        for agent in agents:
            await agent.stop()


@pytest.mark.skipif(AGENT is None, reason="AIOCLUSTER_NODE_AGENT is not set (CTest sets it)")
async def test_sealed_python_nodes_and_agents_share_one_keyring_file(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    keyring.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    other = tmp_path / "other-keyring"
    other.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    p1, a1, a2, a3 = (free_port() for _ in range(4))
    agents = [AgentProcess("asio-agent", a1, p1, "asio", "--keyring", str(keyring)),
              AgentProcess("libevent-agent", a2, a1, "libevent", "--keyring", str(keyring)),
              # Holds another key: it reaches everyone and is refused by everyone.
              AgentProcess("outsider", a3, p1, "asio", "--keyring", str(other))]
    py1 = Cluster(fast_config("py1", p1, [a1, a3], sealing=SealingConfig.from_keyring_file(keyring)), {"role": "py1"})
    try:
        async with py1:
            for agent in agents:
                await agent.start()
            members = {"py1", "asio-agent", "libevent-agent"}
            await eventually(lambda: {n.name for n in py1.live_nodes()} == members, timeout=20)
            await eventually(lambda: all(agent.sees("py1", "role", "py1") for agent in agents[:2]), timeout=20)
            py1.set("sealed", "yes")
            await eventually(lambda: all(agent.sees("py1", "sealed", "yes") for agent in agents[:2]), timeout=20)
            assert py1.stats()["dropped_seal_unknown_key"] > 0
            outsider = agents[2].latest
            assert outsider is not None and set(outsider["live"]) == {"outsider"}
            assert {n.name for n in py1.live_nodes()} == members
    finally:
        for agent in agents:
            await agent.stop()
