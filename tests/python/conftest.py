"""Helpers of the Python package's tests: free ports, fast configs, waiting for a condition."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from datetime import timedelta
from typing import Any, Callable

from aiocluster import Config, FailureDetectorConfig, NodeId

INTERVAL = 0.05  # gossip interval of the tests' clusters, in seconds


_given: set[int] = set()


def free_port() -> int:
    """A port free now, below Linux's ephemeral range (32768-60999): one from that range could be
    taken as the source port of an outgoing connection before the node binds it. Never the same
    port twice in one process."""
    while True:
        port = random.randrange(20000, 32768)
        if port in _given:
            continue
        _given.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def fast_config(name: str, port: int, seeds: list[int], **overrides: Any) -> Config:
    """A node on 127.0.0.1:port gossiping every INTERVAL, whose failure detector expects that."""
    settings: dict[str, Any] = dict(
        node_id=NodeId(name=name, gossip_advertise_addr=("127.0.0.1", port)),
        cluster_id="pytest",
        gossip_interval=INTERVAL,
        seed_nodes=[("127.0.0.1", seed) for seed in seeds],
        failure_detector=FailureDetectorConfig(initial_interval=timedelta(seconds=INTERVAL),
                                               max_interval=timedelta(seconds=1)),
    )
    settings.update(overrides)
    return Config(**settings)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits until `condition()` holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {condition.__doc__ or condition}")
        await asyncio.sleep(0.02)
