"""Programs written for Python aiocluster 1.1.0's public API (examples/python), run unchanged in
their own interpreter on this package: a service registry that uses hooks, TTL keys, deletes and
snapshots. (The quick start, on its fixed ports 7000-7002, is `./dev py-demo`'s.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=60, cwd=EXAMPLES)


def test_service_registry_runs_unchanged() -> None:
    base = free_port()
    while not _free(base + 1):
        base = free_port()
    result = run("service_registry.py", str(base))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registry: worker left" in result.stdout


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
