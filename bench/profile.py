#!/usr/bin/env python3
"""Instructions per call of one benchmark's timed body, from callgrind.

    profile.py BUILD_DIR BENCHMARK_FILTER FUNCTION [--top N] [--out FILE]

Runs aiocluster-bench under valgrind's callgrind, collecting only inside
bench::profiled::FUNCTION (bench/profiled.cc: the timed body of each
benchmark, so no setup is counted), then prints the instructions per call and
the functions that cost the most per call, inclusive and exclusive.
Instruction counts do not depend on the machine's load, unlike timings.

    bench/profile.py build/release 'BM_GossipExchange/100/10$' exchange
    bench/profile.py build/release 'BM_ApplyDelta/1000/10$' apply --top 25
"""
import os
import re
import subprocess
import sys
import tempfile


def calls_of(out_file, function):
    """How many times the collected function was called, from the call records."""
    names = {}
    calls = 0
    target = None
    with open(out_file) as f:
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                target = names.get(m.group(1), "") if line.startswith("cfn=") else None
                continue
            if line.startswith("calls=") and target is not None and target.startswith(function + "("):
                calls += int(line.split("=")[1].split()[0])
    return calls


def short(name):
    """The function's name without its parameter list, file and object."""
    name = re.sub(r"^(\?\?\?|[^ :]*\.(cc|h|c|S|tcc)):", "", name)
    name = name.replace("(anonymous namespace)", "{anon}")
    name = re.sub(r" \[[^\]]*\]$", "", name)
    depth, out = 0, []
    for ch in name:  # drop every parenthesised argument list
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)[:110]


def table(out_file, inclusive, calls, top, skip):
    args = ["callgrind_annotate", "--threshold=100"]
    if inclusive:
        args.append("--inclusive=yes")
    text = subprocess.run(args + [out_file], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = short(m.group(2))
        if not name or any(s in name for s in skip):
            continue
        rows.append((int(m.group(1).replace(",", "")) / calls, name))
    return rows[:top]


def main(argv):
    args = [a for a in argv[1:]]
    top = 20
    out = None
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        print(__doc__)
        return 2
    build, bench_filter, function = args
    function = "bench::profiled::" + function
    out = out or os.path.join(tempfile.mkdtemp(prefix="aiocluster-profile-"), "callgrind.out")
    subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                    "--toggle-collect=" + function + "(*",
                    os.path.join(build, "bench", "aiocluster-bench"),
                    "--benchmark_filter=" + bench_filter, "--benchmark_min_time=0.2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    calls = calls_of(out, function)
    if calls == 0:
        print(f"{function} was not called: does {bench_filter} use it?", file=sys.stderr)
        return 1
    with open(out) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
    print(f"{bench_filter}: {total / calls:,.0f} instructions per call of {function} "
          f"({calls} calls; callgrind output {out})")
    skip = ["benchmark::", "(below main)", "libc_start", "bench::profiled::", "main", "0x0"]
    for title, inclusive in (("inclusive", True), ("exclusive (self)", False)):
        print(f"\n  {title}, instructions per call:")
        for cost, name in table(out, inclusive, calls, top, skip if inclusive else []):
            print(f"  {cost:>12,.0f}  {100 * cost * calls / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
