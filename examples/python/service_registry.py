"""A small service registry written against Python aiocluster 1.1.0's public API, as a user of
that library would write it; tests/python runs it unchanged on this package.

Two nodes in one event loop: `registry` watches the cluster through hooks, `worker` publishes its
endpoint, a lease that expires on its own, and then leaves. Exits 0 once the registry has seen
each of those events, 1 otherwise.

    PYTHONPATH=build/release/python python3 examples/python/service_registry.py [BASE_PORT]
"""

import asyncio
import sys
from datetime import timedelta
from typing import Optional

from aiocluster import (Cluster, Config, FailureDetectorConfig, NodeId, VersionedValue,
                        VersionStatusEnum)


def config(name: str, port: int, seed: int) -> Config:
    return Config(
        node_id=NodeId(name=name, gossip_advertise_addr=("127.0.0.1", port)),
        cluster_id="service-registry",
        gossip_interval=0.1,
        seed_nodes=[("127.0.0.1", seed)],
        marked_for_deletion_grace_period=20,
        failure_detector=FailureDetectorConfig(phi_threshhold=8.0,
                                               initial_interval=timedelta(seconds=0.1),
                                               max_interval=timedelta(seconds=1)),
    )


async def wait_for(what: str, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)
    print(f"registry: {what}", flush=True)


async def main(base_port: int) -> int:
    registry = Cluster(config("registry", base_port, base_port + 1), initial_key_values={"role": "registry"})
    worker = Cluster(config("worker", base_port + 1, base_port), initial_key_values={"role": "worker"})
    joined: list[NodeId] = []
    left: list[NodeId] = []
    endpoints: dict[str, Optional[str]] = {}

    async def on_join(node_id: NodeId) -> None:
        joined.append(node_id)

    async def on_leave(node_id: NodeId) -> None:
        left.append(node_id)

    async def on_key_change(node_id: NodeId, key: str, old: Optional[VersionedValue],
                            new: VersionedValue) -> None:
        if key == "endpoint":
            endpoints[node_id.name] = None if new.is_deleted() else new.value

    registry.on_node_join(on_join)
    registry.on_node_leave(on_leave)
    registry.on_key_change(on_key_change)
    try:
        async with registry:
            await worker.start()
            await wait_for("worker joined", lambda: worker.self_node_id in joined)
            worker.set("endpoint", "http://127.0.0.1:9000")
            worker.set_with_ttl("lease", "held")
            await wait_for("endpoint published", lambda: endpoints.get("worker") == "http://127.0.0.1:9000")

            def lease() -> Optional[VersionedValue]:
                return registry.snapshot().node_states[worker.self_node_id].get_versioned("lease")

            await wait_for("lease seen", lambda: (v := lease()) is not None and v.value == "held")
            assert lease().status == VersionStatusEnum.DELETE_AFTER_TTL  # type: ignore[union-attr]
            worker.delete("endpoint")
            await wait_for("endpoint withdrawn", lambda: "worker" in endpoints and endpoints["worker"] is None)
            state = registry.snapshot().node_states[worker.self_node_id]
            assert state.get("endpoint") is None and state.get("role") == "worker"
            assert state.heartbeat > 0 and state.max_version >= 4
            await worker.close()
            await wait_for("worker left", lambda: worker.self_node_id in left)
            assert worker.self_node_id in registry.dead_nodes()
            assert registry.live_nodes() == [registry.self_node_id]
            stats = registry.hook_stats()
            print(f"registry: hooks enqueued={stats.enqueued} processed={stats.processed} "
                  f"dropped={stats.dropped} errors={stats.errors}", flush=True)
    except (TimeoutError, AssertionError) as error:
        print(f"registry: failed: {error!r}", file=sys.stderr)
        await worker.close()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 7300)))
