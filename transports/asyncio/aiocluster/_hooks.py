"""Hooks: the node's events become callback calls, run in the background through a bounded queue."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable, Optional, Union

from . import _core
from ._types import HookStats, NodeId, VersionedValue

log = logging.getLogger("aiocluster")

NodeHook = Callable[[NodeId], Union[Awaitable[None], None]]
KeyChangeHook = Callable[[NodeId, str, Optional[VersionedValue], VersionedValue], Union[Awaitable[None], None]]


class Hooks:
    """Callbacks in registration order. A full queue drops the call and counts it: a mutation
    or a packet never waits for a hook."""

    def __init__(self, maxsize: int) -> None:
        self.on_join: list[NodeHook] = []
        self.on_leave: list[NodeHook] = []
        self.on_key_change: list[KeyChangeHook] = []
        self._queue: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = asyncio.Queue(maxsize)
        self._worker: Optional[asyncio.Task[None]] = None
        self._enqueued = self._processed = self._dropped = self._errors = 0

    def take_events(self, node: _core.Node) -> None:
        """Drains the node's events into the queue (or discards them when nobody listens)."""
        if not (self.on_join or self.on_leave or self.on_key_change):
            node.discard_events()
            return
        for event in node.poll_events():
            kind = event[0]
            if kind == "key":
                if self.on_key_change:
                    _, node_key, key, old, new = event
                    args = (NodeId._of(node_key), key, None if old is None else VersionedValue._of(old),
                            VersionedValue._of(new))
                    for key_hook in self.on_key_change:
                        self._put(key_hook, args)
            else:
                hooks = self.on_join if kind == "join" else self.on_leave
                if hooks:
                    node_args = (NodeId._of(event[1]),)
                    for node_hook in hooks:
                        self._put(node_hook, node_args)

    def _put(self, hook: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait((hook, args))
            self._enqueued += 1
        except asyncio.QueueFull:
            self._dropped += 1

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="aiocluster-hooks")

    async def _run(self) -> None:
        while True:
            hook, args = await self._queue.get()
            try:
                result = hook(*args)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:  # close() without draining: this call is lost
                self._dropped += 1
                self._queue.task_done()
                raise
            except Exception:
                self._errors += 1
                log.exception("aiocluster: hook %r raised", hook)
            self._processed += 1
            self._queue.task_done()

    async def close(self, drain: bool, timeout: float) -> None:
        """Runs what is queued within `timeout` when `drain`, then stops; what is left is dropped."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if drain:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except asyncio.TimeoutError:
                pass
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            self._dropped += 1

    def stats(self) -> HookStats:
        return HookStats(self._enqueued, self._processed, self._dropped, self._errors, self._queue.qsize())
