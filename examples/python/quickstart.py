"""Python aiocluster's quick start, unmodified: node N (1, 2 or 3) of the three-node cluster
simple1..simple3 on 127.0.0.1:7000-7002, each seeded with the one before it.

    PYTHONPATH=build/release/python python3 examples/python/quickstart.py 1   # and 2, 3
"""

import asyncio
import sys

from aiocluster import Cluster, Config, NodeId

# node: (gossip port, seed port)
NODES = {1: (7000, 7002), 2: (7001, 7000), 3: (7002, 7001)}


async def main(n: int) -> None:
    port, seed = NODES[n]
    cluster = Cluster(Config(node_id=NodeId(name=f"simple{n}", gossip_advertise_addr=("127.0.0.1", port)),
                             gossip_interval=1, seed_nodes=[("127.0.0.1", seed)],
                             cluster_id="simple-aiocluster"),
                      initial_key_values={"cluster": str(n)})
    async with cluster:
        await asyncio.sleep(10)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
