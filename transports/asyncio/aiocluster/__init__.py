"""aiocluster: gossip cluster membership (Scuttlebutt, phi accrual failure detection, hooks)
with Python aiocluster 1.1.0's public API, on the C++ sans-IO core and an asyncio driver."""

from ._cluster import Cluster
from ._types import (ClusterSnapshot, Config, FailureDetectorConfig, HookStats, NodeId, NodeState,
                     VersionedValue, VersionStatusEnum)

__all__ = [
    "Cluster",
    "ClusterSnapshot",
    "Config",
    "FailureDetectorConfig",
    "HookStats",
    "NodeId",
    "NodeState",
    "VersionStatusEnum",
    "VersionedValue",
]
