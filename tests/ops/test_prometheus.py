#!/usr/bin/env python3
"""A real Prometheus (Debian's prometheus) scrapes three aiocluster-node
agents, one of them on the libevent driver: its HTTP API must show all three
targets up and aiocluster_live_members at 3 for each; promtool check metrics
must accept every agent's /metrics as it is.

    test_prometheus.py --agent build/debug/examples/node-agent/aiocluster-node
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request

from agents import PATIENCE, Cluster, end_process, free_port, parse_args, tool, wait_until

ARGS = parse_args()


class Prometheus:
    """A Prometheus server on loopback with a scratch config and storage."""

    def __init__(self, targets: list[str], workdir: str) -> None:
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as out:
            out.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n  - job_name: aiocluster\n    static_configs:\n"
                      f"      - targets: {json.dumps(targets)}\n")
        self.log_path = os.path.join(workdir, "prometheus.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={config}",
                 f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {open(self.log_path).read()[-2000:]}")
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=PATIENCE) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise ValueError(body)
        return body["data"]

    def stop(self) -> None:
        end_process(self.process)


class PrometheusScrape(unittest.TestCase):
    def test_prometheus_scrapes_three_agents(self) -> None:
        cluster = Cluster(ARGS.agent)
        workdir = tempfile.mkdtemp(prefix="aiocluster-prometheus-")
        prometheus = None
        try:
            cluster.start(["asio", "libevent", "asio"], "ops-prometheus")
            targets = [f"127.0.0.1:{a.port}" for a in cluster.agents]
            prometheus = Prometheus(targets, workdir)

            def all_up() -> bool:
                active = prometheus.api("targets")["activeTargets"]
                return sorted(t["labels"]["instance"] for t in active if t["health"] == "up") \
                    == sorted(targets)
            wait_until("Prometheus to find all three targets up", all_up)

            def live_gauges() -> bool:
                result = prometheus.api("query", query="aiocluster_live_members")["result"]
                values = {r["metric"]["instance"]: float(r["value"][1]) for r in result}
                return values == {t: 3.0 for t in targets}
            wait_until("aiocluster_live_members at 3 on every target", live_gauges)

            # The node labels of the info metric name each scraped agent.
            result = prometheus.api("query", query="aiocluster_node_info")["result"]
            self.assertEqual(sorted(r["metric"]["node"] for r in result),
                             ["agent1", "agent2", "agent3"])

            for agent in cluster.agents:
                text = agent.request("GET", "/metrics").body
                check = subprocess.run([tool("promtool"), "check", "metrics"], input=text,
                                       capture_output=True, timeout=PATIENCE)
                self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
                self.assertEqual(check.stdout + check.stderr, b"")  # not even a lint warning
        finally:
            if prometheus is not None:
                prometheus.stop()
            statuses = cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        self.assertEqual(statuses, {"agent1": 0, "agent2": 0, "agent3": 0})


if __name__ == "__main__":
    unittest.main(verbosity=2)
