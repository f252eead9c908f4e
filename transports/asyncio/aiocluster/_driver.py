"""The asyncio driver: TCP (or TLS) streams and one timer around the sans-IO core.

After every input -- the timer, a frame, a mutation -- it drains the node in the order of
node.h: transmits (each starts an exchange), the next deadline (re-arms the one timer with
loop.call_at), events (into the hook queue). Which message comes next on a connection is the
core's StreamExchange's to say; this module only moves whole frames.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from contextlib import suppress
from typing import Any, Optional

from . import _core
from ._hooks import Hooks
from ._types import Config

_FRAME_HEADER = 4
_CLOSE_TIMEOUT = 1.0
_STREAM_ERRORS = (OSError, EOFError, asyncio.TimeoutError, ValueError, ssl.SSLError)


def peer_names(writer: asyncio.StreamWriter) -> Optional[list[str]]:
    """The names of a verified client certificate (DNS and IP subjectAltNames, subject CN), for
    the core's tls_name rule; None when the connection has no verified certificate."""
    cert: Any = writer.get_extra_info("peercert")
    if not cert:
        return None
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    for rdn in cert.get("subject", ()):
        names.extend(value for key, value in rdn if key == "commonName")
    return names


class Driver:
    def __init__(self, node: _core.Node, config: Config, hooks: Hooks) -> None:
        self._node = node
        self._config = config
        self._hooks = hooks
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._clock_offset = 0.0  # loop.time() - time.monotonic()
        self._server: Optional[asyncio.base_events.Server] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy_targets: set[tuple[str, int]] = set()
        self._closed = False
        self.exchanges_failed = 0
        self.exchanges_skipped = 0

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closed

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._clock_offset = self._loop.time() - time.monotonic()
        host, port = self._config.node_id.gossip_advertise_addr
        self._server = await asyncio.start_server(self._accepted, host, port, ssl=self._config.tls_server_context)
        self._node.handle_timeout(time.monotonic_ns())
        self.drain()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def drain(self) -> None:
        """The drain of node.h after an input: transmits, then the timer, then events."""
        node = self._node
        while (tx := node.poll_transmit()) is not None:
            self._start_exchange(*tx)
        self._arm(node.poll_timeout())
        self._hooks.take_events(node)

    def _arm(self, deadline: Optional[float]) -> None:
        if self._closed or self._loop is None or (deadline == self._timer_at and self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline + self._clock_offset, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._node.handle_timeout(time.monotonic_ns())
        self.drain()

    # --- Exchanges ---

    def _start_exchange(self, host: str, port: int, tls_name: Optional[str], syn: bytes) -> None:
        target = (host, port)
        if (self._closed or self._loop is None or len(self._busy_targets) >= self._config.max_concurrent_gossip
                or target in self._busy_targets):
            self.exchanges_skipped += 1
            return
        self._busy_targets.add(target)
        self._track(self._loop.create_task(self._initiate(target, tls_name, syn)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _initiate(self, target: tuple[str, int], tls_name: Optional[str], syn: bytes) -> None:
        config = self._config
        context = config.tls_client_context
        # The tls_name rule of the C++ drivers: the configured name, else the node's tls_name,
        # else the host dialed.
        server_hostname = (config.tls_server_hostname or tls_name or target[0]) if context else None
        try:
            try:
                async with asyncio.timeout(config.connect_timeout):
                    reader, writer = await asyncio.open_connection(*target, ssl=context,
                                                                   server_hostname=server_hostname)
            except _STREAM_ERRORS:
                self.exchanges_failed += 1
                return
            await self._run(_core.StreamExchange.initiate(syn), reader, writer)
        finally:
            self._busy_targets.discard(target)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closed or task is None:
            writer.close()
            return
        self._track(task)
        exchange = _core.StreamExchange.respond()
        if self._config.tls_server_context is not None:
            exchange.set_peer_names(peer_names(writer))
        await self._run(exchange, reader, writer)

    async def _run(self, exchange: _core.StreamExchange, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        config = self._config
        try:
            while True:
                action, frame = exchange.next()
                if action == _core.StreamExchange.Action.WRITE:
                    assert frame is not None
                    writer.write(frame)
                    async with asyncio.timeout(config.write_timeout):
                        await writer.drain()
                elif action == _core.StreamExchange.Action.READ:
                    async with asyncio.timeout(config.read_timeout):
                        payload = await self._read_frame(reader)
                    exchange.on_frame(self._node, payload, time.monotonic_ns())
                    self.drain()
                else:
                    break
        except _STREAM_ERRORS:
            self.exchanges_failed += 1
        finally:
            writer.close()
            with suppress(*_STREAM_ERRORS):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await writer.wait_closed()

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(_FRAME_HEADER)
        size = _core.frame_payload_size(header, self._node.max_inbound_payload_size)
        return await reader.readexactly(size)
