"""./dev py-demo: runs the three nodes of quickstart.py in one event loop, unmodified, and prints
each node's view whenever it changes. Exits 1 unless every node ends up seeing all three nodes
live with their `cluster` keys."""

from __future__ import annotations

import asyncio
import sys
import time

import aiocluster
import quickstart

clusters: list[aiocluster.Cluster] = []


class WatchedCluster(aiocluster.Cluster):
    """The package's Cluster, remembered for printing."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        clusters.append(self)


def view(cluster: aiocluster.Cluster) -> str:
    snap = cluster.snapshot()
    live = {node.name for node in snap.live_nodes}
    keys = {node.name: state.get("cluster") for node, state in sorted(snap.node_states.items(), key=lambda i: i[0].name)}
    return ", ".join(f"{name}{'' if name in live else ' (not live)'} cluster={value}" for name, value in keys.items())


def converged(cluster: aiocluster.Cluster) -> bool:
    snap = cluster.snapshot()
    names = {node.name for node in snap.live_nodes}
    keys = {node.name: state.get("cluster") for node, state in snap.node_states.items() if node in snap.live_nodes}
    return names == {"simple1", "simple2", "simple3"} and keys == {"simple1": "1", "simple2": "2", "simple3": "3"}


async def printer(start: float) -> bool:
    last: dict[str, str] = {}
    done = False
    while True:
        for cluster in clusters:
            name = cluster.self_node_id.name
            now = view(cluster)
            if last.get(name) != now:
                last[name] = now
                print(f"[{time.monotonic() - start:5.2f} s] {name} sees: {now}", flush=True)
        if not done and len(clusters) == 3 and all(converged(c) for c in clusters):
            done = True
            print(f"[{time.monotonic() - start:5.2f} s] converged: every node sees all three live with their keys",
                  flush=True)
        await asyncio.sleep(0.1)


async def main() -> int:
    quickstart.Cluster = WatchedCluster  # type: ignore[misc]
    start = time.monotonic()
    watch = asyncio.create_task(printer(start))
    final_ok = False

    async def check_before_end() -> None:
        nonlocal final_ok
        await asyncio.sleep(9.5)  # the nodes run 10 s
        final_ok = len(clusters) == 3 and all(converged(c) for c in clusters)

    await asyncio.gather(quickstart.main(1), quickstart.main(2), quickstart.main(3), check_before_end())
    watch.cancel()
    print("all three nodes live in every view with their cluster keys" if final_ok
          else "FAILED: not every node saw all three with their keys", flush=True)
    return 0 if final_ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
