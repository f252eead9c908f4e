#!/usr/bin/python3
"""CPU per gossip round of a node that knows 100 nodes x 10 keys: the Python package (asyncio
driver) against the Asio driver (aiocluster-node), measured side by side in one run.

Both measured nodes, A-python (a Cluster of this package, in its own process) and A-asio (an
aiocluster-node agent), sit in one cluster with a third node B (an agent) and 97 filler nodes
(Python Clusters in this process) with 10 keys each: 100 nodes. Once both A nodes hold every
key, the fillers stop; after they are declared dead, the live cluster is A-python, A-asio and B,
each gossiping every --interval, and the 97 dead nodes stay in every digest. The CPU time each
A process spends over --seconds (all its threads, from /proc/<pid>/task/*/schedstat, in ns) is
divided by the rounds it ran in that time (seconds / interval). Both A nodes serve the same
peers' rounds too, so the comparison is symmetric. A-python runs on asyncio's default event loop,
or with --loop uvloop on uvloop (Debian's python3-uvloop) installed as the loop policy, as an
application would.

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python/round_bench.py \\
        --agent build/release/examples/node-agent/aiocluster-node
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

NODES, KEYS = 100, 10


def keys(owner: str) -> dict[str, str]:
    return {f"key{i}": f"{owner}-value-{i:04d}-{'x' * 24}" for i in range(KEYS)}


def cpu_ns(pid: int) -> int:
    return sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir())


def user_system_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime (clock ticks)


def config(name: str, port: int, seed: int, interval: float):  # type: ignore[no-untyped-def]
    from aiocluster import Config, FailureDetectorConfig, NodeId
    return Config(node_id=NodeId(name=name, gossip_advertise_addr=("127.0.0.1", port)), cluster_id="bench",
                  gossip_interval=interval, seed_nodes=[("127.0.0.1", seed)],
                  failure_detector=FailureDetectorConfig(initial_interval=timedelta(seconds=interval)))


async def serve_python(port: int, seed: int, interval: float) -> None:
    """A-python: prints how many keys it holds (one line a second) until it holds them all."""
    from aiocluster import Cluster
    async with Cluster(config("a-python", port, seed, interval), keys("a-python")) as cluster:
        while True:
            held = sum(len(s.key_values) for s in cluster.snapshot().node_states.values())
            print(json.dumps({"keys": held}), flush=True)
            if held >= NODES * KEYS:
                break
            await asyncio.sleep(1)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


async def discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def main(args: argparse.Namespace) -> int:
    from aiocluster import Cluster
    # Ports below Linux's ephemeral range (32768-60999), where no outgoing connection takes one.
    ports = iter(range(args.base_port, args.base_port + NODES))
    pb, pa_py, pa_cc = next(ports), next(ports), next(ports)
    agent_flags = ["--cluster-id", "bench", "--gossip-interval-ms", str(round(args.interval * 1000)),
                   "--fd-initial-interval-ms", str(round(args.interval * 1000)), "--driver", "asio"]

    def agent(name: str, port: int, seed: int, report_ms: int):  # type: ignore[no-untyped-def]
        kv = [flag for key, value in keys(name).items() for flag in ("--kv", f"{key}={value}")]
        return asyncio.create_subprocess_exec(
            args.agent, "--name", name, "--listen", f"127.0.0.1:{port}", "--seed", f"127.0.0.1:{seed}",
            "--report-ms", str(report_ms), *agent_flags, *kv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)

    b = await agent("b", pb, pa_py, 60_000)
    a_cc = await agent("a-asio", pa_cc, pb, 2_000)
    a_py = await asyncio.create_subprocess_exec(
        sys.executable, *os.environ.get("AIOCLUSTER_BENCH_PYTHON_FLAGS", "").split(), __file__, "--serve-python",
        str(pa_py), str(pb), str(args.interval), args.loop, stdout=asyncio.subprocess.PIPE)
    fillers = [Cluster(config(f"filler{i:02d}", next(ports), pb, 0.5), keys(f"filler{i:02d}"))
               for i in range(NODES - 3)]
    try:
        for filler in fillers:
            await filler.start()
        assert a_py.stdout is not None and a_cc.stdout is not None
        while (held := json.loads(await a_py.stdout.readline())["keys"]) < NODES * KEYS:
            print(f"A-python holds {held} keys", file=sys.stderr, flush=True)
        while (held := sum(len(kv) for kv in json.loads(await a_cc.stdout.readline())["kv"].values())) < NODES * KEYS:
            print(f"A-asio holds {held} keys", file=sys.stderr, flush=True)
        print(f"both A nodes hold {NODES} nodes x {KEYS} keys; stopping the fillers", flush=True)
        # Keep reading the agents' reports: a full pipe would stop them.
        drains = [asyncio.create_task(discard(p.stdout)) for p in (a_cc, b) if p.stdout is not None]
        for filler in fillers:
            await filler.close()
        await asyncio.sleep(5)  # until they are dead everywhere
        rounds = args.seconds / args.interval
        before = (cpu_ns(a_py.pid), cpu_ns(a_cc.pid))
        ticks_before = (user_system_ticks(a_py.pid), user_system_ticks(a_cc.pid))
        await asyncio.sleep(args.seconds)
        after = (cpu_ns(a_py.pid), cpu_ns(a_cc.pid))
        ticks_after = (user_system_ticks(a_py.pid), user_system_ticks(a_cc.pid))
        hz = os.sysconf("SC_CLK_TCK")
        split = [tuple((ticks_after[i][j] - ticks_before[i][j]) / hz / rounds * 1e6 for j in range(2))
                 for i in range(2)]
        per_round = [(after[i] - before[i]) / rounds / 1000 for i in range(2)]
        print(f"CPU per round over {args.seconds:g} s ({rounds:.0f} rounds each, interval {args.interval:g} s):")
        print(f"  Python package ({args.loop + ')':9} {per_round[0]:8.1f} us"
              f"  (user {split[0][0]:.0f} us, kernel {split[0][1]:.0f} us)")
        print(f"  Asio driver:              {per_round[1]:8.1f} us"
              f"  (user {split[1][0]:.0f} us, kernel {split[1][1]:.0f} us)")
        print(f"  ratio Python / Asio:      {per_round[0] / per_round[1]:8.2f}")
        return 0
    finally:
        for process in (a_py, a_cc, b):
            if process.returncode is None:
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve-python":
        if sys.argv[5] == "uvloop":
            import uvloop
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve_python(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", required=True, help="path to aiocluster-node")
    parser.add_argument("--base-port", type=int, default=21000, help=f"the {NODES} ports from here on")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--interval", type=float, default=0.05, help="gossip interval of the measured nodes")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="A-python's event loop: asyncio's default, or uvloop as the loop policy")
    sys.exit(asyncio.run(main(parser.parse_args())))
