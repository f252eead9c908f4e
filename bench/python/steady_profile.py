#!/usr/bin/python3
"""Runs a script with cProfile off until SIGUSR1 and dumps what it recorded at SIGUSR2, so a
steady state can be profiled alone. For round_bench.py's A-python process:

    AIOCLUSTER_BENCH_PYTHON_FLAGS=bench/python/steady_profile.py PYTHONPATH=build/release/python \\
        /usr/bin/python3 bench/python/round_bench.py --agent build/release/examples/node-agent/aiocluster-node
    # 6 s after "both A nodes hold ...": kill -USR1 <A-python>; sleep 5; kill -USR2 <A-python>

The profile goes to $STEADY_PROFILE_OUT (default steady.prof); read it with pstats (total_calls).
"""

import cProfile
import os
import runpy
import signal
import sys
from typing import Any

profile = cProfile.Profile()


def start(*_: Any) -> None:
    profile.enable()


def stop(*_: Any) -> None:
    profile.disable()
    profile.dump_stats(os.environ.get("STEADY_PROFILE_OUT", "steady.prof"))


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
