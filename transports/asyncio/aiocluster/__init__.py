"""aiocluster: gossip cluster membership (Scuttlebutt, phi accrual failure detection, hooks)
with Python aiocluster 1.1.0's public API, on the C++ sans-IO core and an asyncio driver."""

from ._cluster import Cluster
from ._types import (ClusterSnapshot, Config, FailureDetectorConfig, HookStats, NodeId, NodeState, SealingConfig,
                     SealMode, VersionedValue, VersionStatusEnum, read_keyring_file)

__all__ = [
    "Cluster",
    "ClusterSnapshot",
    "Config",
    "FailureDetectorConfig",
    "HookStats",
    "NodeId",
    "NodeState",
    "SealMode",
    "SealingConfig",
    "VersionStatusEnum",
    "VersionedValue",
    "read_keyring_file",
]
