"""The asyncio driver: TCP (or TLS) connections and one timer around the sans-IO core.

After every input -- the timer, a frame, a mutation -- it drains the node in the order of
node.h: transmits (each starts an exchange), the next deadline (re-arms the one timer with
loop.call_at), events (into the hook queue). Which message comes next on a connection is the
core's StreamExchange's to say; an Exchange protocol only moves whole frames, by callbacks
(no task per connection once it is open). Every connection of a driver reads into the driver's
one receive buffer: the decoder copies what it takes before the next read.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Optional, cast

from . import _core
from ._hooks import Hooks
from ._types import Config

_WRITE = _core.StreamExchange.Action.WRITE
_READ = _core.StreamExchange.Action.READ
_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, ssl.SSLError, ValueError)
_RECEIVE_BUFFER_SIZE = 256 * 1024  # what asyncio's own transports read at once
_TIMER_SLACK = 0.002  # seconds: a deadline timer firing this early counts as on time


def peer_names(transport: asyncio.BaseTransport) -> Optional[list[str]]:
    """The names of a verified client certificate (DNS and IP subjectAltNames, subject CN), for
    the core's tls_name rule; None when the connection has no verified certificate."""
    cert: Any = transport.get_extra_info("peercert")
    if not cert:
        return None
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    for rdn in cert.get("subject", ()):
        names.extend(value for key, value in rdn if key == "commonName")
    return names


class Exchange(asyncio.BufferedProtocol):
    """One gossip exchange on one connection: frames in, the core's StreamExchange decides what
    goes out, until it says close. Dialing waits at most connect_timeout, a read read_timeout; a
    last write that does not drain within write_timeout aborts the connection."""

    def __init__(self, driver: Driver, exchange: _core.StreamExchange,
                 target: Optional[tuple[str, int]] = None) -> None:
        self._driver = driver
        self.target = target  # the peer dialed, busy until the connection is lost
        self._exchange = exchange
        self._decoder = _core.FrameDecoder(driver.node.max_inbound_payload_size)
        self._transport: Optional[asyncio.Transport] = None
        # One deadline at a time and one timer handle for it: a later deadline moves it without
        # a new handle (the handle re-arms when it fires early), since exchanges end long before.
        self._timer: Optional[asyncio.TimerHandle] = None
        self._deadline = 0.0
        self._reading = False
        self.connected = False
        self.dial: Optional[asyncio.Task[None]] = None  # while dialing
        self.timed_out = False
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self.connected = True
        # A dial cancelled (connect_timeout, or the driver closing) in the loop iteration in which
        # its connection completed still gets here. Refuse it now, while the transport still
        # reports connection_lost: once the dial's task sees the cancellation, uvloop closes the
        # transport without telling the protocol.
        if self.timed_out or not self._driver.admit(self):
            transport.abort()
            return
        if not self._exchange.initiator and self._driver.config.tls_server_context is not None:
            self._exchange.set_peer_names(peer_names(transport))
        self._step()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._driver.receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        view = self._driver.receive_buffer[:nbytes]
        while view and self._transport is not None and not self._transport.is_closing():
            view = view[self._decoder.feed(view):]
            if self._decoder.error is not None:
                self._fail()
                return
            frame = self._decoder.next_frame()
            if frame is None:
                return
            if not self._reading:  # a frame the exchange did not ask for
                self._fail()
                return
            self._reading = False
            self._exchange.on_frame(self._driver.node, frame, time.monotonic_ns())
            self._driver.drain()
            self._step()

    def eof_received(self) -> Optional[bool]:
        if self._reading:
            self._driver.exchanges_failed += 1
        return None  # close

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._lost:
            return
        self._lost = True
        self.cancel_timer()
        self._transport = None
        self._driver.release(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _step(self) -> None:
        transport = self._transport
        assert transport is not None
        while True:
            action, frame = self._exchange.next()
            if action == _WRITE:
                transport.write(frame)  # type: ignore[arg-type]
            elif action == _READ:
                self._reading = True
                self.arm(self._driver.config.read_timeout)
                return
            else:
                transport.close()
                if transport.get_write_buffer_size() > 0:
                    self.arm(self._driver.config.write_timeout)
                else:
                    self.cancel_timer()
                return

    def arm(self, seconds: float) -> None:
        loop = self._driver.loop
        self._deadline = deadline = loop.time() + seconds
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        loop = self._driver.loop
        if self._deadline - loop.time() > _TIMER_SLACK:  # moved later since armed
            self._timer = loop.call_at(self._deadline, self._on_deadline)
            return
        self.timed_out = True
        if self.dial is not None and not self.connected:
            self.dial.cancel()
        else:
            self._fail()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self) -> None:
        self._driver.exchanges_failed += 1
        self.abort()


class Driver:
    def __init__(self, node: _core.Node, config: Config, hooks: Hooks) -> None:
        self.node = node
        self.config = config
        self._hooks = hooks
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._clock_offset = 0.0  # loop.time() - time.monotonic()
        self._server: Optional[asyncio.base_events.Server] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None
        self._dialing: set[Exchange] = set()
        self._open: set[Exchange] = set()
        self._all_closed: Optional[asyncio.Future[None]] = None  # while close() waits
        self._busy_targets: set[tuple[str, int]] = set()
        self._closed = False
        self.receive_buffer = memoryview(bytearray(_RECEIVE_BUFFER_SIZE))
        self.exchanges_failed = 0
        self.exchanges_skipped = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the driver is not started"
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closed

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._clock_offset = loop.time() - time.monotonic()
        host, port = self.config.node_id.gossip_advertise_addr
        context = self.config.tls_server_context
        # A TLS handshake is the first read: it gets read_timeout, not asyncio's 60 s.
        tls = {"ssl": context, "ssl_handshake_timeout": self.config.read_timeout} if context else {}
        self._server = await loop.create_server(
            lambda: Exchange(self, _core.StreamExchange.respond()), host, port, **tls)
        self.node.handle_timeout(time.monotonic_ns())
        self.drain()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Only dials not yet connected are cancelled: a connected one is aborted below, since a
        # cancelled dial would have uvloop close its transport without connection_lost.
        dials = [exchange.dial for exchange in self._dialing if exchange.dial is not None and not exchange.connected]
        for dial in dials:
            dial.cancel()
        await asyncio.gather(*dials, return_exceptions=True)
        if self._open:
            self._all_closed = self.loop.create_future()
            for exchange in list(self._open):
                exchange.abort()
            await self._all_closed

    def drain(self) -> None:
        """The drain of node.h after an input: transmits, then the timer, then events."""
        node = self.node
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
        self.node.handle_timeout(time.monotonic_ns())
        self.drain()

    def tick(self) -> None:
        """Tells the core the time now (running what is due); the caller drains."""
        self.node.handle_timeout(time.monotonic_ns())

    # --- Connections ---

    def admit(self, exchange: Exchange) -> bool:
        if self._closed:
            return False
        self._open.add(exchange)
        return True

    def release(self, exchange: Exchange) -> None:
        self._open.discard(exchange)
        if exchange.target is not None:
            self._busy_targets.discard(exchange.target)
        if not self._open and self._all_closed is not None and not self._all_closed.done():
            self._all_closed.set_result(None)

    def _start_exchange(self, host: str, port: int, tls_name: Optional[str], syn: bytes) -> None:
        target = (host, port)
        if (self._closed or self._loop is None or len(self._busy_targets) >= self.config.max_concurrent_gossip
                or target in self._busy_targets):
            self.exchanges_skipped += 1
            return
        self._busy_targets.add(target)
        exchange = Exchange(self, _core.StreamExchange.initiate(syn), target)
        exchange.dial = self._loop.create_task(self._dial(exchange, tls_name))
        exchange.arm(self.config.connect_timeout)
        self._dialing.add(exchange)

    async def _dial(self, exchange: Exchange, tls_name: Optional[str]) -> None:
        config = self.config
        context = config.tls_client_context
        target = exchange.target
        assert target is not None
        # The tls_name rule of the C++ drivers: the configured name, else the node's tls_name,
        # else the host dialed.
        server_hostname = (config.tls_server_hostname or tls_name or target[0]) if context else None
        dialed = False
        try:
            await self.loop.create_connection(lambda: exchange, *target, ssl=context,
                                              server_hostname=server_hostname)
            dialed = True
        except _CONNECT_ERRORS:
            self.exchanges_failed += 1
        except asyncio.CancelledError:
            if not exchange.timed_out:  # the driver closes
                raise
            self.exchanges_failed += 1  # connect_timeout
        finally:
            # Once connected, the exchange runs by callbacks and releases the target when its
            # connection is lost: this task does not wait for it.
            exchange.dial = None
            self._dialing.discard(exchange)
            if not exchange.connected:
                exchange.cancel_timer()
                self._busy_targets.discard(target)
            elif not dialed:
                # Connected, yet the dial failed: the transport may be gone without a word.
                exchange.abort()
                exchange.connection_lost(None)
