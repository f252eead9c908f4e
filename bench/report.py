#!/usr/bin/env python3
"""Prints the benchmark targets (issue 18), computed from one run's JSON.

    report.py bench.json [--strict]

Each target is a figure of that one run. Times are CPU time (the time the
benchmark's thread ran): on a shared machine real time also counts the time
spent waiting for a CPU. Real time is printed beside, with the load average
at the start of the run. With --strict the exit status is 1 when a target is
missed or not measured.
"""
import json
import re
import sys

SCALE_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Every benchmark family the suite has: the report says which did not run.
EXPECTED = [
    "BM_Digest/100", "BM_Digest/1000",
    "BM_DeltaFull/100/100", "BM_DeltaFull/1000/10",
    "BM_DeltaFewStale/1000", "BM_DeltaFewStale/10000", "BM_DeltaFewStale/100000",
    "BM_ApplyDelta/100/100", "BM_ApplyDelta/1000/10",
    "BM_EncodePacket", "BM_DecodePacket", "BM_EncodePacketValue", "BM_DecodePacketValue",
    "BM_GossipExchange/10/10", "BM_GossipExchange/100/10", "BM_GossipExchange/1000/10",
    "BM_GossipExchange/10/10/fresh_keys:10", "BM_GossipExchange/100/10/fresh_keys:10",
    "BM_GossipExchange/1000/10/fresh_keys:10",
    "BM_PhiLiveness/100", "BM_PhiLiveness/1000",
    "BM_SimRound/100", "BM_SimRound/1000",
    "BM_MemoryPerKey", "BM_MemoryPerNode",
    "BM_Seal/1024", "BM_Seal/65465", "BM_Open/1024", "BM_Open/65465",
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


def ns(entry, key):
    return entry[key] * SCALE_NS[entry.get("time_unit", "ns")]


def usable(entry):
    return entry is not None and not entry.get("error_occurred")


class Report:
    def __init__(self, runs):
        self.runs = runs
        self.rows = []  # (what, value, goal, met: True/False/None)

    def missing(self, what, goal):
        self.rows.append((what, "not measured", goal, None))

    def per_kv(self, name, limit_ns):
        """Time per key-value of `name` (its key_values counter) at most limit_ns."""
        e = self.runs.get(name)
        what = f"{name}: ns per key-value"
        if not usable(e) or not e.get("key_values"):
            return self.missing(what, f"<= {limit_ns} ns")
        kvs = e["key_values"]
        cpu = ns(e, "cpu_time") / kvs
        real = ns(e, "real_time") / kvs
        self.rows.append((what, f"{cpu:.1f} ns (real {real:.1f} ns, {kvs:.0f} key-values)",
                          f"<= {limit_ns} ns", cpu <= limit_ns))

    def throughput(self, name, min_gb_s):
        e = self.runs.get(name)
        what = f"{name}: GB/s"
        if not usable(e) or not e.get("packet_bytes"):
            return self.missing(what, f">= {min_gb_s} GB/s")
        size = e["packet_bytes"]
        cpu = size / ns(e, "cpu_time")  # bytes per ns = GB/s
        real = size / ns(e, "real_time")
        per_kv = (f", {ns(e, 'cpu_time') / e['key_values']:.1f} ns per key-value"
                  if e.get("key_values") else "")
        self.rows.append((what, f"{cpu:.2f} GB/s (real {real:.2f} GB/s, {size:.0f} bytes{per_kv})",
                          f">= {min_gb_s} GB/s", cpu >= min_gb_s))

    def counter(self, what, names, key, limit, unit):
        """The worst value of counter `key` among `names`, at most `limit`."""
        values = [(self.runs[n][key], n) for n in names if usable(self.runs.get(n)) and key in self.runs[n]]
        if len(values) != len(names):
            return self.missing(what, f"<= {limit}{unit}")
        worst, name = max(values)
        self.rows.append((what, f"{worst:.4g}{unit} (worst: {name})", f"<= {limit}{unit}",
                          worst <= limit))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    strict = "--strict" in argv[2:]
    context, runs = load(argv[1])
    r = Report(runs)

    # Applying a delta, decode excluded (issue 18).
    r.per_kv("BM_ApplyDelta/100/100", 20)
    r.per_kv("BM_ApplyDelta/1000/10", 20)
    apply_runs = ["BM_ApplyDelta/100/100", "BM_ApplyDelta/1000/10"]
    r.counter("heap allocations per applied key-value", apply_runs, "allocs_per_kv", 0.1, "")
    r.counter("key-value bytes copied per applied key-value (the packet is taken over)",
              apply_runs, "bytes_copied_per_kv", 0, " B")
    r.throughput("BM_DecodePacket", 1.5)
    # Building a delta, and encoding.
    r.per_kv("BM_DeltaFull/100/100", 15)
    r.per_kv("BM_DeltaFull/1000/10", 15)
    r.throughput("BM_EncodePacket", 3.0)
    # A steady-state exchange, round bookkeeping included.
    exchange = runs.get("BM_GossipExchange/100/10")
    what = "BM_GossipExchange/100/10 (steady state, with node 0's round)"
    if usable(exchange):
        cpu = ns(exchange, "cpu_time") / 1e3
        real = ns(exchange, "real_time") / 1e3
        allocs = exchange.get("allocs", float("nan"))
        r.rows.append((what, f"{cpu:.1f} us (real {real:.1f} us, {allocs:.1f} allocations)",
                       "<= 15 us", cpu <= 15.0))
    else:
        r.missing(what, "<= 15 us")

    # Earlier targets, kept.
    small = runs.get("BM_DeltaFewStale/1000")
    large = runs.get("BM_DeltaFewStale/100000")
    what = "BM_DeltaFewStale/100000 / BM_DeltaFewStale/1000"
    if usable(small) and usable(large):
        ratio = ns(large, "cpu_time") / ns(small, "cpu_time")
        r.rows.append((what, f"{ratio:.2f}x ({ns(large, 'cpu_time'):.0f} ns / "
                             f"{ns(small, 'cpu_time'):.0f} ns)", "<= 3x", ratio <= 3.0))
    else:
        r.missing(what, "<= 3x")
    memory = [(name, e) for name, e in runs.items()
              if name.startswith("BM_MemoryPerKey/") and usable(e) and "overhead_bytes_per_key" in e]
    what = "heap overhead per key-value (worst BM_MemoryPerKey)"
    if memory:
        name, worst = max(memory, key=lambda item: item[1]["overhead_bytes_per_key"])
        overhead = worst["overhead_bytes_per_key"]
        r.rows.append((what, f"{overhead:.1f} B ({name.split('/iterations')[0]}, "
                             f"{worst['heap_bytes_per_key']:.1f} B held per "
                             f"{worst['key_value_bytes']:.1f} B of key+value)",
                       "< 64 B", overhead < 64.0))
    else:
        r.missing(what, "< 64 B")

    load_avg = context.get("load_avg")
    busy = (f" (load average {load_avg[0]:.2f} on {context.get('num_cpus', '?')} CPUs at the "
            "start; verdicts on CPU time)" if load_avg else " (verdicts on CPU time)")
    print(f"Targets, from {argv[1]}{busy}:")
    width = max(len(row[0]) for row in r.rows)
    for what, value, goal, met in r.rows:
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

    if strict and (any(row[3] is not True for row in r.rows) or errors):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
