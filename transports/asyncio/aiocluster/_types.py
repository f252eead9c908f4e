"""The value types of the public API: node ids, configuration, versioned values, snapshots."""

from __future__ import annotations

import base64
import binascii
import enum
import os
import ssl
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Optional, Union

Seconds = Union[float, int, timedelta]


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _require(ok: bool, field_name: str, rule: str) -> None:
    if not ok:
        raise ValueError(f"{field_name}: {rule}")


@dataclass(frozen=True)
class NodeId:
    """One incarnation of a node: a restart picks a new generation_id and is a new node."""

    name: str
    generation_id: int = field(default_factory=time.monotonic_ns)
    gossip_advertise_addr: tuple[str, int] = ("localhost", 7001)
    tls_name: Optional[str] = None

    def long_name(self) -> str:
        host, port = self.gossip_advertise_addr
        return f"{self.name}:{self.generation_id}:{host}:{port}"

    def _key(self) -> tuple[str, int, str, int, Optional[str]]:
        host, port = self.gossip_advertise_addr
        return (self.name, self.generation_id, host, port, self.tls_name)

    @classmethod
    def _of(cls, key: tuple[str, int, str, int, Optional[str]]) -> NodeId:
        name, generation, host, port, tls_name = key
        return cls(name, generation, (host, port), tls_name)


@dataclass
class FailureDetectorConfig:
    """Phi accrual failure detection. `phi_threshhold` is Python aiocluster's published spelling."""

    phi_threshhold: float = 8.0
    sampling_window_size: int = 1000
    max_interval: Seconds = timedelta(seconds=10)
    initial_interval: Seconds = timedelta(seconds=5)
    dead_node_grace_period: Seconds = timedelta(hours=24)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(self.phi_threshhold > 0, "failure_detector.phi_threshhold", "must be positive")
        _require(self.sampling_window_size >= 1, "failure_detector.sampling_window_size", "must be at least 1")
        for name in ("max_interval", "initial_interval", "dead_node_grace_period"):
            _require(_seconds(getattr(self, name)) > 0, f"failure_detector.{name}", "must be positive")


class SealMode(enum.Enum):
    """What a node with a keyring sends and accepts. A keyring goes onto a running cluster through
    them in order: every node OPEN_ONLY, then every node PERMISSIVE, then every node REQUIRED."""

    OPEN_ONLY = 0  # sends plaintext; opens sealed packets and accepts plaintext
    PERMISSIVE = 1  # seals (answers a plaintext packet in plaintext); accepts plaintext
    REQUIRED = 2  # seals everything; refuses plaintext (stats()["dropped_unsealed"])


SEAL_KEY_SIZE = 32


def _check_keys(keys: list[bytes], field_name: str) -> None:
    _require(bool(keys), field_name, "must hold at least one key")
    for key in keys:
        _require(isinstance(key, bytes) and len(key) == SEAL_KEY_SIZE, field_name,
                 f"every key must be {SEAL_KEY_SIZE} bytes")


@dataclass
class SealingConfig:
    """Sealed gossip (AES-256-GCM, replay-proof; the project's proto/README.md section 4): every
    packet sealed with the primary key (the first), opened with any installed key. Not part of
    Python aiocluster 1.1.0, which cannot join a cluster whose nodes require sealing."""

    keys: list[bytes]
    mode: SealMode = SealMode.REQUIRED
    # A sealed packet stamped further than this from our clock is refused as stale: node clocks
    # must agree within it.
    replay_window: Seconds = timedelta(seconds=60)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_keys(self.keys, "sealing.keys")
        _require(isinstance(self.mode, SealMode), "sealing.mode", "must be a SealMode")
        _require(_seconds(self.replay_window) > 0, "sealing.replay_window", "must be positive")

    @classmethod
    def from_keyring_file(cls, path: str | os.PathLike[str],
                          mode: SealMode = SealMode.REQUIRED) -> SealingConfig:
        """Reads the agent's keyring file format: one base64-encoded 32-byte key per line, the first
        line the primary; blank lines and lines starting with '#' are skipped."""
        return cls(read_keyring_file(path), mode)


def read_keyring_file(path: str | os.PathLike[str]) -> list[bytes]:
    """The keys of a keyring file (see SealingConfig.from_keyring_file); ValueError names the line."""
    keys: list[bytes] = []
    with open(path, encoding="ascii") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                key = base64.b64decode(text, validate=True)
            except binascii.Error:
                raise ValueError(f"{path}:{number}: not base64") from None
            _require(len(key) == SEAL_KEY_SIZE, f"{path}:{number}", f"a key must be {SEAL_KEY_SIZE} bytes")
            keys.append(key)
    _require(bool(keys), str(path), "holds no key")
    return keys


@dataclass
class Config:
    """How a Cluster runs. Times are in seconds."""

    node_id: NodeId
    cluster_id: str = "default-cluster"
    gossip_interval: float = 1.0
    gossip_count: int = 3
    seed_nodes: list[tuple[str, int]] = field(default_factory=list)
    marked_for_deletion_grace_period: float = 7200
    failure_detector: FailureDetectorConfig = field(default_factory=FailureDetectorConfig)
    max_payload_size: int = 65507
    connect_timeout: float = 3.0
    read_timeout: float = 3.0
    write_timeout: float = 3.0
    max_concurrent_gossip: int = 32
    hook_queue_maxsize: int = 10000
    drain_hooks_on_shutdown: bool = True
    hook_shutdown_timeout: float = 5.0
    tls_server_context: Optional[ssl.SSLContext] = None
    tls_client_context: Optional[ssl.SSLContext] = None
    tls_server_hostname: Optional[str] = None
    sealing: Optional[SealingConfig] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first unusable field."""
        _require(isinstance(self.node_id, NodeId), "node_id", "must be a NodeId")
        _require(bool(self.node_id.name), "node_id.name", "must not be empty")
        _require(self.node_id.generation_id > 0, "node_id.generation_id", "must be positive")
        host, port = self.node_id.gossip_advertise_addr
        _require(bool(host), "node_id.gossip_advertise_addr", "host must not be empty")
        _require(0 < port < 65536, "node_id.gossip_advertise_addr", "port must be in 1..65535")
        _require(isinstance(self.cluster_id, str) and bool(self.cluster_id), "cluster_id", "must not be empty")
        _require(_seconds(self.gossip_interval) > 0, "gossip_interval", "must be positive")
        _require(self.gossip_count >= 1, "gossip_count", "must be at least 1")
        for seed in self.seed_nodes:
            ok = len(seed) == 2 and bool(seed[0]) and isinstance(seed[1], int) and 0 < seed[1] < 65536
            _require(ok, "seed_nodes", f"{seed!r} is not a (host, port) pair")
        _require(_seconds(self.marked_for_deletion_grace_period) > 0, "marked_for_deletion_grace_period",
                 "must be positive")
        _require(isinstance(self.failure_detector, FailureDetectorConfig), "failure_detector",
                 "must be a FailureDetectorConfig")
        self.failure_detector.validate()
        _require(512 <= self.max_payload_size <= 16 * 1024 * 1024, "max_payload_size",
                 "must be between 512 and 16 MiB")
        for name in ("connect_timeout", "read_timeout", "write_timeout"):
            _require(_seconds(getattr(self, name)) > 0, name, "must be positive")
        _require(self.max_concurrent_gossip >= 1, "max_concurrent_gossip", "must be at least 1")
        _require(self.hook_queue_maxsize >= 1, "hook_queue_maxsize", "must be at least 1")
        _require(_seconds(self.hook_shutdown_timeout) >= 0, "hook_shutdown_timeout", "must not be negative")
        for name in ("tls_server_context", "tls_client_context"):
            value = getattr(self, name)
            _require(value is None or isinstance(value, ssl.SSLContext), name, "must be an ssl.SSLContext or None")
        _require(self.sealing is None or isinstance(self.sealing, SealingConfig), "sealing",
                 "must be a SealingConfig or None")
        if self.sealing is not None:
            self.sealing.validate()


class VersionStatusEnum(enum.IntEnum):
    SET = 0
    DELETED = 1
    DELETE_AFTER_TTL = 2


@dataclass(frozen=True)
class VersionedValue:
    """A key's value as replicated. status_change_ts is local and never sent: for a tombstone
    (DELETED, DELETE_AFTER_TTL) the time.monotonic() reading at which this node stored that
    status (its own mutation, or the delta that brought it), from which tombstone GC counts
    marked_for_deletion_grace_period; 0.0 for a SET value, for which the core keeps no time."""

    value: str
    version: int
    status: VersionStatusEnum
    status_change_ts: float = 0.0

    def is_deleted(self) -> bool:
        return self.status == VersionStatusEnum.DELETED

    @classmethod
    def _of(cls, raw: tuple[str, int, int, float]) -> VersionedValue:
        return cls(raw[0], raw[1], VersionStatusEnum(raw[2]), raw[3])


@dataclass
class NodeState:
    """What one node holds about one node: its heartbeat, versions and key-values (tombstones too)."""

    node: NodeId
    heartbeat: int
    max_version: int
    last_gc_version: int
    key_values: dict[str, VersionedValue]

    def get(self, key: str) -> Optional[str]:
        """The value under `key`, None when absent or deleted."""
        versioned = self.key_values.get(key)
        return None if versioned is None or versioned.is_deleted() else versioned.value

    def get_versioned(self, key: str) -> Optional[VersionedValue]:
        return self.key_values.get(key)


@dataclass
class ClusterSnapshot:
    cluster_id: str
    self_node_id: NodeId
    node_states: dict[NodeId, NodeState]
    live_nodes: list[NodeId]
    dead_nodes: list[NodeId]


@dataclass(frozen=True)
class HookStats:
    """Hook callbacks enqueued, processed (run to their end, errors included), dropped (on a
    full queue, or left over at close), errors (raised), and those waiting now."""

    enqueued: int
    processed: int
    dropped: int
    errors: int
    queue_size: int
