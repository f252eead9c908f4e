#!/usr/bin/env python3
"""Detection and convergence of real aiocluster-node agents on loopback.

Starts N agents on 127.0.0.1 (each seeded with the one before), measures how
long after the last one started every agent sees all N live (convergence),
then SIGKILLs one and measures how long until every other agent sees it gone
from its live set (detection). Repeats, and prints the median of the runs.
Timing is read from each agent's JSON report line (--report-ms), so the
resolution is the report period. A measurement, not a test: it never fails
on a number.

  bench/loopback_detection.py --node build/release/examples/node-agent/aiocluster-node \
      --agents 50 --gossip-interval-ms 100 --detection-time-ms 1000 --runs 3

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Optional


def free_port_base(count: int) -> int:
    """A base port with `count` free TCP ports after it (best effort)."""
    for base in range(20000, 60000, 97):
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


class Agents:
    def __init__(self, node: str, count: int, interval_ms: int, detection_ms: Optional[int],
                 report_ms: int, extra: list[str]):
        self.sel = selectors.DefaultSelector()
        self.procs: list[subprocess.Popen] = []
        self.live: dict[int, set[str]] = {}
        self.buffers: dict[int, bytes] = {}
        base = free_port_base(count)
        for i in range(count):
            args = [node, "--name", f"n{i}", "--listen", f"127.0.0.1:{base + i}",
                    "--gossip-interval-ms", str(interval_ms), "--report-ms", str(report_ms)]
            if i > 0:
                args += ["--seed", f"127.0.0.1:{base + i - 1}"]
            if detection_ms is not None:
                args += ["--detection-time-ms", str(detection_ms)]
            args += extra
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(p.stdout.fileno(), False)
            self.sel.register(p.stdout, selectors.EVENT_READ, i)
            self.procs.append(p)
            self.live[i] = set()
            self.buffers[i] = b""
        self.started = time.monotonic()

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            i = key.data
            try:
                chunk = os.read(key.fileobj.fileno(), 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fileobj)
                continue
            data = self.buffers[i] + chunk
            *lines, self.buffers[i] = data.split(b"\n")
            if lines:
                # Only the latest complete report matters.
                self.live[i] = set(json.loads(lines[-1])["live"])

    def wait(self, condition, limit: float) -> Optional[float]:
        """Seconds until condition() first holds, or None after `limit`."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            self.pump(0.005)
            if condition():
                return time.monotonic() - start
        return None

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def one_run(args, rng_victim: int) -> tuple[Optional[float], Optional[float]]:
    agents = Agents(args.node, args.agents, args.gossip_interval_ms, args.detection_time_ms,
                    args.report_ms, args.extra)
    try:
        everyone = {f"n{i}" for i in range(args.agents)}
        converge = agents.wait(lambda: all(agents.live[i] == everyone for i in agents.live), 30)
        # Let the detectors learn the interval, as a running cluster has.
        agents.wait(lambda: False, args.settle_s)
        victim = rng_victim % args.agents
        name = f"n{victim}"
        agents.procs[victim].send_signal(signal.SIGKILL)
        agents.procs[victim].wait()
        agents.sel.unregister(agents.procs[victim].stdout)
        del agents.live[victim]
        detect = agents.wait(lambda: all(name not in live for live in agents.live.values()), 30)
        return converge, detect
    finally:
        agents.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the aiocluster-node binary")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--gossip-interval-ms", type=int, default=100)
    parser.add_argument("--detection-time-ms", type=int, default=1000,
                        help="0: leave failure_detector.detection_time unset")
    parser.add_argument("--report-ms", type=int, default=20)
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("extra", nargs="*", help="more agent flags, after --")
    args = parser.parse_args()
    if args.detection_time_ms == 0:
        args.detection_time_ms = None
    converges, detects = [], []
    for run in range(args.runs):
        converge, detect = one_run(args, 7 + 13 * run)
        converges.append(converge)
        detects.append(detect)
        print(f"run {run + 1}: converged {fmt(converge)}, killed agent dead everywhere "
              f"{fmt(detect)}", file=sys.stderr)
    ok_c = [c for c in converges if c is not None]
    ok_d = [d for d in detects if d is not None]
    result = {
        "agents": args.agents,
        "gossip_interval_ms": args.gossip_interval_ms,
        "detection_time_ms": args.detection_time_ms,
        "report_ms": args.report_ms,
        "runs": args.runs,
        "converge_s": converges,
        "detect_s": detects,
        "median_converge_s": statistics.median(ok_c) if len(ok_c) == args.runs else None,
        "median_detect_s": statistics.median(ok_d) if len(ok_d) == args.runs else None,
    }
    print(json.dumps(result) if args.json else
          f"median of {args.runs}: converged {fmt(result['median_converge_s'])}, "
          f"dead everywhere {fmt(result['median_detect_s'])}")
    return 0


def fmt(seconds: Optional[float]) -> str:
    return "never" if seconds is None else f"{seconds:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
