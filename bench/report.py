#!/usr/bin/env python3
"""Prints the targets of the benchmark issue, computed from one run's JSON.

    report.py bench.json [--strict]

Targets (ratios within one run, so the machine's speed cancels out where it
can):
  - BM_DeltaFewStale/100000 costs at most 3x BM_DeltaFewStale/1000;
  - BM_GossipExchange/100/10 (steady state) under 50 microseconds;
  - heap overhead per replicated key-value under 64 bytes beyond the key and
    value bytes, the worst of every BM_MemoryPerKey run.
With --strict the exit status is 1 when a target is missed or not measured.
"""
import json
import re
import sys

SCALE_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Every benchmark family the issue names: the report says which did not run.
EXPECTED = [
    "BM_Digest/100", "BM_Digest/1000",
    "BM_DeltaFull/100/100", "BM_DeltaFull/1000/10",
    "BM_DeltaFewStale/1000", "BM_DeltaFewStale/10000", "BM_DeltaFewStale/100000",
    "BM_ApplyDelta/100/100", "BM_ApplyDelta/1000/10",
    "BM_EncodePacket", "BM_DecodePacket",
    "BM_GossipExchange/10/10", "BM_GossipExchange/100/10", "BM_GossipExchange/1000/10",
    "BM_GossipExchange/10/10/fresh_keys:10", "BM_GossipExchange/100/10/fresh_keys:10",
    "BM_GossipExchange/1000/10/fresh_keys:10",
    "BM_PhiLiveness/100", "BM_PhiLiveness/1000",
    "BM_SimRound/100", "BM_SimRound/1000",
    "BM_MemoryPerKey", "BM_MemoryPerNode",
]


def load(path):
    """(context, benchmark name -> its entry: the median when repeated, else the run)."""
    with open(path) as f:
        data = json.load(f)
    runs = {}
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                runs[name] = b
        elif name not in runs or runs[name].get("aggregate_name") != "median":
            runs.setdefault(name, b)
    return data.get("context", {}), runs


def ns(entry, key="real_time"):
    return entry[key] * SCALE_NS[entry.get("time_unit", "ns")]


def usable(entry):
    return entry is not None and not entry.get("error_occurred")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    strict = "--strict" in argv[2:]
    context, runs = load(argv[1])
    rows = []  # (what, value, goal, met: True/False/None)

    small = runs.get("BM_DeltaFewStale/1000")
    large = runs.get("BM_DeltaFewStale/100000")
    if usable(small) and usable(large):
        ratio = ns(large) / ns(small)
        rows.append(("BM_DeltaFewStale/100000 / BM_DeltaFewStale/1000",
                     f"{ratio:.2f}x ({ns(large):.0f} ns / {ns(small):.0f} ns)", "<= 3x", ratio <= 3.0))
    else:
        rows.append(("BM_DeltaFewStale/100000 / BM_DeltaFewStale/1000", "not measured", "<= 3x", None))

    exchange = runs.get("BM_GossipExchange/100/10")
    if usable(exchange):
        us = ns(exchange) / 1e3
        cpu = ns(exchange, "cpu_time") / 1e3
        rows.append(("BM_GossipExchange/100/10 (steady state)",
                     f"{us:.1f} us (cpu {cpu:.1f} us)", "< 50 us", us < 50.0))
    else:
        rows.append(("BM_GossipExchange/100/10 (steady state)", "not measured", "< 50 us", None))

    memory = [(name, e) for name, e in runs.items()
              if name.startswith("BM_MemoryPerKey/") and usable(e) and "overhead_bytes_per_key" in e]
    if memory:
        name, worst = max(memory, key=lambda item: item[1]["overhead_bytes_per_key"])
        overhead = worst["overhead_bytes_per_key"]
        rows.append(("heap overhead per key-value (worst BM_MemoryPerKey)",
                     f"{overhead:.1f} B ({name.split('/iterations')[0]}, "
                     f"{worst['heap_bytes_per_key']:.1f} B held per {worst['key_value_bytes']:.1f} B of key+value)",
                     "< 64 B", overhead < 64.0))
    else:
        rows.append(("heap overhead per key-value (worst BM_MemoryPerKey)", "not measured", "< 64 B", None))

    load_avg = context.get("load_avg")
    busy = (f" (load average {load_avg[0]:.2f} on {context.get('num_cpus', '?')} CPUs at the start; "
            "real time well above CPU time means the CPUs were shared)" if load_avg else "")
    print(f"Targets, from {argv[1]}{busy}:")
    width = max(len(r[0]) for r in rows)
    for what, value, goal, met in rows:
        verdict = {True: "met", False: "MISSED", None: "not run"}[met]
        print(f"  {what:<{width}}  {value}  [target {goal}: {verdict}]")

    # Run names without the options Google Benchmark appends ("/iterations:1").
    names = {re.sub(r"/(iterations|min_time|repeats|threads|real_time|manual_time)(:[^/]*)?", "", n)
             for n in runs}
    families = {"BM_MemoryPerKey", "BM_MemoryPerNode"}
    missing = [e for e in EXPECTED
               if not any(n == e or (e in families and n.startswith(e + "/")) for n in names)]
    errors = [f"{n}: {e.get('error_message', 'error')}" for n, e in sorted(runs.items())
              if e.get("error_occurred")]
    if missing:
        print("Not in this run: " + ", ".join(missing))
    for line in errors:
        print("Failed: " + line)

    if strict and (any(r[3] is not True for r in rows) or errors):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
