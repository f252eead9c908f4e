#!/usr/bin/env python3
"""Detection time against false deaths, from aiocluster-sim runs.

For each phi model, stated detection time and loss rate, runs the simulator
over several seeds with latency spikes, random pauses of running nodes and a
few crashes, and prints a Markdown table: the median and worst time until
every survivor saw a crash dead, and the false deaths declared by healthy and
by paused observers (summed over the seeds).

  bench/detection_tradeoff.py --sim build/release/examples/aiocluster-sim/aiocluster-sim \
      --nodes 200 --seeds 3

Standard library only. Each run is guarded by a timeout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys


def run(sim: str, flags: list[str]) -> dict:
    out = subprocess.run([sim, *flags, "--json"], capture_output=True, text=True, timeout=3600,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def flags_for(args: argparse.Namespace, model: str, detection: str, loss: str,
              seed: int) -> list[str]:
    flags = ["--nodes", str(args.nodes), "--rounds", str(args.rounds), "--seed", str(seed),
             "--gossip-interval-ms", str(args.gossip_interval_ms), "--loss", loss,
             "--phi-model", model, "--spike", args.spike, "--pause", args.pause,
             "--crash", args.crash]
    if detection != "0":
        flags += ["--detection-time-ms", detection]
    return flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", required=True)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=90)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gossip-interval-ms", type=int, default=1000)
    parser.add_argument("--detection-ms", default="3000,5000,8000",
                        help="stated detection times; 0 for the protocol default (phi 8)")
    parser.add_argument("--loss", default="0,0.1,0.3")
    parser.add_argument("--spike", default="0.01:3000", help="P:MAX_MS latency spikes")
    parser.add_argument("--pause", default="5@20:6", help="COUNT@SECOND:DURATION pauses")
    parser.add_argument("--crash", default="3@40")
    parser.add_argument("--jobs", type=int, default=1,
                        help="simulations at once (each 1,000-node run holds about 1.7 GB)")
    args = parser.parse_args()
    print(f"{args.nodes} nodes, {args.rounds} rounds of {args.gossip_interval_ms} ms, "
          f"{args.seeds} seeds; spikes {args.spike}, pauses {args.pause}, crashes {args.crash}\n")
    print("| phi model | stated detection | loss | detection median / max (ms) | undetected "
          "| false deaths (healthy) | false deaths (paused) |")
    print("|---|---|---|---|---|---|---|")
    for model in ("linear", "normal"):
        for detection in args.detection_ms.split(","):
            for loss in args.loss.split(","):
                runs = [flags_for(args, model, detection, loss, seed)
                        for seed in range(1, args.seeds + 1)]
                with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                    results = list(pool.map(lambda flags: run(args.sim, flags), runs))
                detects = [r["detect_ms"] for r in results if r["detect_ms"] is not None]
                undetected = len(results) - len(detects)
                healthy = sum(r["false_deaths"] for r in results)
                paused = sum(r["false_deaths_by_paused"] for r in results)
                stated = "default (phi 8)" if detection == "0" else f"{int(detection) / 1000:g} s"
                timing = (f"{statistics.median(detects):.0f} / {max(detects)}" if detects
                          else "-")
                print(f"| {model} | {stated} | {float(loss) * 100:g} % | {timing} | "
                      f"{undetected} | {healthy} | {paused} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
