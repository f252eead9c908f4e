"""Cluster: one member of a gossip cluster, Python aiocluster 1.1.0's public API on the C++ core."""

from __future__ import annotations

import secrets
import time
from types import TracebackType
from typing import Optional

from . import _core
from ._driver import Driver
from ._hooks import Hooks, KeyChangeHook, NodeHook
from ._types import (ClusterSnapshot, Config, HookStats, NodeId, NodeState, SealMode, VersionedValue, _check_keys,
                     _seconds)


def _core_settings(config: Config) -> dict[str, object]:
    fd = config.failure_detector
    return {
        "cluster_id": config.cluster_id,
        "node_id": config.node_id._key(),
        "seeds": [(host, port) for host, port in config.seed_nodes],
        "gossip_interval": _seconds(config.gossip_interval),
        "gossip_count": config.gossip_count,
        "max_payload_size": config.max_payload_size,
        "marked_for_deletion_grace_period": _seconds(config.marked_for_deletion_grace_period),
        "phi_threshold": fd.phi_threshhold,
        "sampling_window_size": fd.sampling_window_size,
        "max_interval": _seconds(fd.max_interval),
        "initial_interval": _seconds(fd.initial_interval),
        "dead_node_grace_period": _seconds(fd.dead_node_grace_period),
        **_sealing_settings(config),
    }


def _sealing_settings(config: Config) -> dict[str, object]:
    sealing = config.sealing
    if sealing is None:
        return {}
    # Sealed packets carry the wall clock (the replay window): the monotonic clock the core runs
    # on is pinned to the system clock here, as the C++ drivers do.
    return {
        "seal_keys": list(sealing.keys),
        "seal_mode": sealing.mode.value,
        "replay_window": _seconds(sealing.replay_window),
        "wall_clock_at_start_ns": time.time_ns(),
    }


class Cluster:
    """A cluster member: gossips its key-values with its peers over TCP (or TLS) while started,
    tells hooks who joins and leaves and which keys change.

        async with Cluster(config, initial_key_values={"role": "db"}) as cluster:
            cluster.set("ready", "1")
    """

    def __init__(self, config: Config, initial_key_values: Optional[dict[str, str]] = None) -> None:
        config.validate()
        self._config = config
        # The core checks the config once more, naming the field (ValueError).
        # The seed is fresh per process and never the random module's (which a program may seed):
        # sealing takes its nonces' sender id from it, and two nodes must never share one.
        self._node = _core.Node(_core_settings(config), time.monotonic_ns(), secrets.randbits(64),
                                list((initial_key_values or {}).items()))
        self._hooks = Hooks(config.hook_queue_maxsize)
        self._driver = Driver(self._node, config, self._hooks)
        self._started = False
        self._closed = False

    # --- Lifecycle ---

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._hooks.start()
        await self._driver.start()

    async def close(self) -> None:
        """Stops gossiping, then runs the queued hooks within hook_shutdown_timeout (or cancels the
        running one at once when drain_hooks_on_shutdown is False)."""
        if self._closed:
            return
        self._closed = True
        await self._driver.close()
        await self._hooks.close(self._config.drain_hooks_on_shutdown, _seconds(self._config.hook_shutdown_timeout))

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()

    # --- This node's key-values ---

    def set(self, key: str, value: str) -> None:
        self._before_mutation()
        self._node.set(key, value)
        self._after_mutation()

    def delete(self, key: str) -> None:
        self._before_mutation()
        self._node.delete(key)
        self._after_mutation()

    def set_with_ttl(self, key: str, value: str) -> None:
        """Sets `key`, then deletes it after marked_for_deletion_grace_period; readable until then."""
        self._before_mutation()
        self._node.set_with_ttl(key, value)
        self._after_mutation()

    def delete_after_ttl(self, key: str) -> None:
        self._before_mutation()
        self._node.delete_after_ttl(key)
        self._after_mutation()

    def get(self, key: str) -> Optional[str]:
        return self._node.get(key)

    def get_versioned(self, key: str) -> Optional[VersionedValue]:
        raw = self._node.get_versioned(key)
        return None if raw is None else VersionedValue._of(raw)

    def _before_mutation(self) -> None:
        # The core stamps a mutation (a tombstone's status_change_ts) with the time of its latest
        # input: give it the time now. Before start() that is when the Cluster was created.
        if self._driver.running:
            self._driver.tick()

    def _after_mutation(self) -> None:
        if self._driver.running:
            self._driver.drain()
        else:
            self._hooks.take_events(self._node)

    # --- Sealed gossip: the keyring at run time (Config.sealing sets it up) ---

    def install_key(self, key: bytes) -> None:
        """Installs a key that opens packets; the first on a node without a keyring turns sealing on
        and seals. A rotation: install the new key everywhere, make it primary everywhere, then
        remove the old key everywhere."""
        _check_keys([key], "key")
        self._node.install_key(key)

    def make_primary_key(self, key: bytes) -> None:
        """Installs `key` if needed and seals with it from now on."""
        _check_keys([key], "key")
        self._node.make_primary_key(key)

    def remove_key(self, key: bytes) -> bool:
        """False when `key` is not installed; ValueError for the primary (make another primary first)."""
        _check_keys([key], "key")
        return self._node.remove_key(key)

    def set_keyring(self, keys: list[bytes]) -> None:
        """Makes `keys` the installed keys, the first the primary (a reloaded keyring file)."""
        _check_keys(keys, "keys")
        self._node.set_keyring(keys)

    def set_seal_mode(self, mode: SealMode) -> None:
        if not isinstance(mode, SealMode):
            raise ValueError("mode: must be a SealMode")
        self._node.set_seal_mode(mode.value)

    def seal_keys(self) -> list[bytes]:
        """The installed keys, the primary first."""
        return self._node.seal_keys()

    # --- The cluster as this node sees it ---

    @property
    def self_node_id(self) -> NodeId:
        return self._config.node_id

    def live_nodes(self) -> list[NodeId]:
        """Live nodes, this one included."""
        return [NodeId._of(key) for key in self._node.live_nodes()]

    def dead_nodes(self) -> list[NodeId]:
        return [NodeId._of(key) for key in self._node.dead_nodes()]

    def snapshot(self) -> ClusterSnapshot:
        states: dict[NodeId, NodeState] = {}
        live: list[NodeId] = []
        dead: list[NodeId] = []
        for key, heartbeat, max_version, last_gc_version, is_live, key_values in self._node.snapshot():
            node = NodeId._of(key)
            values = {k: VersionedValue._of(v) for k, v in key_values.items()}
            states[node] = NodeState(node, heartbeat, max_version, last_gc_version, values)
            (live if is_live or node == self.self_node_id else dead).append(node)
        return ClusterSnapshot(self._config.cluster_id, self.self_node_id, states, live, dead)

    # --- Hooks ---

    def on_node_join(self, callback: NodeHook) -> None:
        self._hooks.on_join.append(callback)

    def on_node_leave(self, callback: NodeHook) -> None:
        self._hooks.on_leave.append(callback)

    def on_key_change(self, callback: KeyChangeHook) -> None:
        self._hooks.on_key_change.append(callback)

    def hook_stats(self) -> HookStats:
        return self._hooks.stats()

    # --- Counters ---

    def stats(self) -> dict[str, int]:
        """The core's counters (packets, drops by reason, deltas applied) and the driver's."""
        counters = dict(self._node.stats())
        counters["exchanges_failed"] = self._driver.exchanges_failed
        counters["exchanges_skipped"] = self._driver.exchanges_skipped
        return counters
