#!/usr/bin/env python3
"""Every endpoint of aiocluster-node's HTTP API through a real HTTP client
(http.client), on a three-agent cluster of one driver (--driver): answers,
bad requests, and each limit with its counter.

    test_http_api.py --agent build/debug/examples/node-agent/aiocluster-node --driver asio
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import unittest

from agents import PATIENCE, Agent, Cluster, parse_args, wait_until

ARGS = parse_args()


class EventStream:
    """A GET /v1/events read frame by frame."""

    def __init__(self, agent: Agent) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=PATIENCE)
        self.connection.request("GET", "/v1/events")
        self.response = self.connection.getresponse()

    def next_event(self) -> tuple[str, dict]:
        name, data = "", ""
        while True:
            line = self.response.readline().decode()
            if line == "":
                raise AssertionError("the event stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = line[len("data: "):]
            elif line == "" and name:
                return name, json.loads(data)

    def wait_for(self, what: str, match) -> dict:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            name, data = self.next_event()
            if match(name, data):
                return data
        raise AssertionError(f"no event {what}")

    def close(self) -> None:
        self.connection.close()


class HttpApi(unittest.TestCase):
    cluster: Cluster

    @classmethod
    def setUpClass(cls) -> None:
        cls.cluster = Cluster(ARGS.agent)
        cls.cluster.start([ARGS.driver] * 3, f"ops-http-{ARGS.driver}")
        cls.cluster.wait_converged()
        cls.a, cls.b, cls.c = cls.cluster.agents

    @classmethod
    def tearDownClass(cls) -> None:
        statuses = cls.cluster.stop()
        # A leak or a crash at exit (sanitizer builds) shows as a non-zero status.
        assert all(s == 0 for s in statuses.values()), statuses

    def assert_error(self, response, status: int) -> dict:
        self.assertEqual(response.status, status, response.body)
        self.assertEqual(response.headers["content-type"], "application/json")
        body = response.json()
        self.assertEqual(body["status"], status)
        self.assertIsInstance(body["error"], str)
        return body

    def test_cluster_lists_every_member_with_state_and_phi(self) -> None:
        cluster = self.a.get_json("/v1/cluster")
        self.assertEqual(cluster["self"]["name"], "agent1")
        self.assertEqual(cluster["cluster_id"], f"ops-http-{ARGS.driver}")
        # The events test adds (then kills) agent4: only the first three are
        # certain.
        members = {m["name"]: m for m in cluster["members"] if m["name"] != "agent4"}
        self.assertEqual(set(members), {"agent1", "agent2", "agent3"})
        self.assertEqual(cluster["live"], 3)
        for name, m in members.items():
            self.assertEqual(m["state"], "live")
            self.assertEqual(m["self"], name == "agent1")
            self.assertRegex(m["generation"], r"^\d+$")
            self.assertRegex(m["address"], r"^127\.0\.0\.1:\d+$")
            self.assertGreater(m["heartbeat"], 0)
            self.assertGreaterEqual(m["keys"], 1)
            for field in ("max_version", "last_gc_version", "tls_name"):
                self.assertIn(field, m)
            if name == "agent1":
                self.assertIsNone(m["phi"])
            else:
                self.assertIsInstance(m["phi"], float)
        self.assertGreater(cluster["stats"]["rounds"], 0)
        self.assertGreater(cluster["driver"]["exchanges_started"], 0)
        self.assertIn("processed", cluster["hooks"])

    def test_put_is_seen_on_another_node_then_delete(self) -> None:
        reply = self.a.request("PUT", "/v1/keys/colour", b"blue")
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(reply.json()["status"], "set")
        seen = wait_until("agent2 to see colour=blue", lambda: next(
            (m for m in self.b.get_json("/v1/keys/colour")["members"]
             if m["name"] == "agent1" and m["value"] == "blue"), None))
        self.assertEqual(seen["status"], "set")
        keys = self.b.get_json("/v1/nodes/agent1/keys?prefix=col")
        self.assertEqual(keys["member"]["name"], "agent1")
        self.assertEqual(list(keys["key_values"]), ["colour"])
        self.assertEqual(self.b.get_json("/v1/nodes/agent1/keys?prefix=zzz")["key_values"], {})

        self.assertEqual(self.a.request("DELETE", "/v1/keys/colour").status, 200)
        wait_until("agent3 to see colour deleted", lambda: any(
            m["name"] == "agent1" and m["status"] == "deleted"
            for m in self.c.get_json("/v1/keys/colour")["members"]))
        self.assert_error(self.a.request("DELETE", "/v1/keys/colour"), 404)

    def test_put_with_ttl_and_as_json(self) -> None:
        reply = self.a.request("PUT", "/v1/keys/lease?ttl=true", b"x")
        self.assertEqual(reply.json()["status"], "delete_after_ttl")
        reply = self.a.request("PUT", "/v1/keys/quoted", json.dumps("\u00e9t\u00e9").encode(),
                               {"Content-Type": "application/json"})
        self.assertEqual(reply.json()["value"], "\u00e9t\u00e9")
        self.assertEqual(self.a.get_json("/v1/nodes/agent1/keys?prefix=quoted")
                         ["key_values"]["quoted"]["value"], "\u00e9t\u00e9")

    def test_keys_are_percent_decoded_and_may_hold_slashes(self) -> None:
        self.assertEqual(self.a.request("PUT", "/v1/keys/dir%2Fname%20x", b"1").status, 200)
        self.assertEqual(self.a.get_json("/v1/keys/dir/name%20x")["key"], "dir/name x")

    def test_bad_requests(self) -> None:
        self.assert_error(self.a.request("PUT", "/v1/keys/k?ttl=maybe", b"v"), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/k?ttl", b"v"), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/k", b"\xff\xfe"), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/k", b'{"a": 1}',
                                         {"Content-Type": "application/json"}), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/k", b"not json",
                                         {"Content-Type": "application/json"}), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/", b"v"), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/" + "k" * 5000, b"v"), 400)
        self.assert_error(self.a.request("PUT", "/v1/keys/big", b"v" * 60_001), 413)
        self.assert_error(self.a.request("GET", "/v1/nope"), 404)
        self.assert_error(self.a.request("GET", "/v1/cluster/extra"), 404)
        self.assert_error(self.a.request("GET", "/v1/nodes/nobody/keys"), 404)
        self.assert_error(self.a.request("GET", "/v1/keys/never-set"), 404)
        for method, path, allow in [("POST", "/v1/cluster", "GET, HEAD"),
                                    ("PUT", "/metrics", "GET, HEAD"),
                                    ("DELETE", "/", "GET, HEAD"),
                                    ("PATCH", "/v1/keys/k", "GET, HEAD, PUT, DELETE"),
                                    ("POST", "/v1/events", "GET")]:
            reply = self.a.request(method, path)
            self.assert_error(reply, 405)
            self.assertEqual(reply.headers["allow"], allow)
        # Nothing of that reached the node's keys.
        keys = self.a.get_json("/v1/nodes/agent1/keys")["key_values"]
        self.assertFalse({"k", "big"} & set(keys))

    def test_metrics(self) -> None:
        reply = self.a.request("GET", "/metrics")
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = reply.body.decode()
        samples = self.a.metrics()
        self.assertEqual(samples["aiocluster_live_members"], 3)
        dead = [m for m in self.a.get_json("/v1/cluster")["members"] if m["state"] != "live"]
        self.assertEqual(samples["aiocluster_dead_members"], len(dead))  # agent4, after its test
        self.assertGreater(samples["aiocluster_gossip_rounds_total"], 0)
        phis = [k for k in samples if k.startswith("aiocluster_member_phi{")]
        self.assertEqual(len(phis), 2, phis)  # every member but self
        self.assertGreater(samples['aiocluster_http_responses_total{code="200"}'], 0)
        for family in {k.split("{")[0] for k in samples}:
            self.assertIn(f"# HELP {family} ", text)
            self.assertIn(f"# TYPE {family} ", text)

    def test_metrics_leave_phi_out_above_the_member_cap(self) -> None:
        solo = Agent(ARGS.agent, "capped", [
            "--listen", "127.0.0.1:0", "--driver", ARGS.driver, "--metrics-max-phi-members", "0"],
            self.cluster.log_dir)
        try:
            samples = solo.metrics()
            self.assertEqual(samples["aiocluster_member_phi_omitted"], 1)
            self.assertFalse([k for k in samples if k.startswith("aiocluster_member_phi{")])
        finally:
            self.assertEqual(solo.stop(), 0)

    def test_events_stream_keys_joins_leaves_and_the_cluster(self) -> None:
        stream = EventStream(self.b)
        try:
            self.assertEqual(stream.response.status, 200)
            self.assertEqual(stream.response.getheader("Content-Type"), "text/event-stream")
            stream.wait_for("cluster", lambda name, _: name == "cluster")
            self.b.request("PUT", "/v1/keys/streamed", b"yes")
            change = stream.wait_for("key streamed", lambda name, e: name == "key"
                                     and e["key"] == "streamed")
            self.assertEqual((change["member"]["name"], change["new"]["value"]), ("agent2", "yes"))
            self.assertIsNone(change["old"])
            # A fourth node joins, then leaves.
            extra = Agent(ARGS.agent, "agent4", [
                "--listen", "127.0.0.1:0", "--seed", self.b.get_json("/v1/cluster")["self"]["address"],
                "--cluster-id", f"ops-http-{ARGS.driver}", "--gossip-interval-ms", "100",
                "--driver", ARGS.driver], self.cluster.log_dir)
            stream.wait_for("agent4 join", lambda name, e: name == "join"
                            and e["member"]["name"] == "agent4")
            extra.kill()
            stream.wait_for("agent4 leave", lambda name, e: name == "leave"
                            and e["member"]["name"] == "agent4")
            # The other tests find agent4 dead everywhere, not half-way.
            for agent in self.cluster.agents:
                wait_until(f"{agent.name} to see agent4 dead",
                           lambda agent=agent: agent.live_names() == {"agent1", "agent2", "agent3"})
        finally:
            stream.close()

    def test_dashboard_page(self) -> None:
        reply = self.a.request("GET", "/")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["content-type"], "text/html; charset=utf-8")
        page = reply.body.decode()
        self.assertIn("<title>aiocluster</title>", page)
        self.assertIn('new EventSource("/v1/events")', page)
        self.assertNotIn("http://", page.replace("http://www.w3.org/2000/svg", ""))


class Limits(unittest.TestCase):
    """One agent with small limits; each refusal is counted in /metrics."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.cluster = Cluster(ARGS.agent)
        cls.agent = Agent(ARGS.agent, "limited", [
            "--listen", "127.0.0.1:0", "--driver", ARGS.driver,
            "--http-max-connections", "4", "--http-max-header-bytes", "1024",
            "--http-max-body-bytes", "2048", "--http-max-event-backlog-bytes", "16384",
            "--http-cluster-interval-ms", "10"], cls.cluster.log_dir)

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.agent.stop() == 0

    def counter(self, name: str) -> float:
        return self.agent.metrics().get(name, 0.0)

    def test_body_size(self) -> None:
        self.assertEqual(self.agent.request("PUT", "/v1/keys/small", b"v" * 2048).status, 200)
        before = self.counter('aiocluster_http_requests_refused_total{reason="body_too_large"}')
        self.assertEqual(self.agent.request("PUT", "/v1/keys/large", b"v" * 4096).status, 413)
        self.assertEqual(before + 1, self.counter(
            'aiocluster_http_requests_refused_total{reason="body_too_large"}'))

    def test_header_size(self) -> None:
        name = 'aiocluster_http_requests_refused_total{reason="headers_too_large"}'
        before = self.counter(name)
        reply = self.agent.request("GET", "/v1/cluster", headers={"X-Padding": "p" * 2000})
        self.assertEqual(reply.status, 400)
        self.assertEqual(before + 1, self.counter(name))

    def test_malformed_request(self) -> None:
        name = 'aiocluster_http_requests_refused_total{reason="malformed"}'
        before = self.counter(name)
        with socket.create_connection(("127.0.0.1", self.agent.port), timeout=PATIENCE) as s:
            s.sendall(b"this is not http\r\n\r\n")
            self.assertTrue(s.recv(64).startswith(b"HTTP/1.1 400 "))
        self.assertEqual(before + 1, self.counter(name))

    def test_connection_count(self) -> None:
        refused = "aiocluster_http_connections_refused_total"
        before = self.counter(refused)
        idle = [socket.create_connection(("127.0.0.1", self.agent.port)) for _ in range(4)]
        try:
            wait_until("4 open connections", lambda: self._open_connections_seen(idle))
            extra = socket.create_connection(("127.0.0.1", self.agent.port), timeout=PATIENCE)
            self.assertEqual(extra.recv(64), b"")  # closed on accept, no answer
            extra.close()
        finally:
            for s in idle:
                s.close()
        self.assertEqual(before + 1, self.counter(refused))
        # Closed connections free their places: many requests in a row pass.
        for _ in range(20):
            self.assertEqual(self.agent.request("GET", "/v1/cluster").status, 200)
        self.assertEqual(before + 1, self.counter(refused))

    def _open_connections_seen(self, idle: list[socket.socket]) -> bool:
        # A fifth connection would be refused: probe through one of the idle
        # ones, which then stays open for the next request.
        idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"\naiocluster_http_connections " not in reply:
            chunk = idle[0].recv(65536)
            if not chunk:
                raise AssertionError("the probe connection closed")
            reply += chunk
        line = reply.split(b"\naiocluster_http_connections ", 1)[1].split(b"\n", 1)[0]
        return float(line) == 4

    def test_slow_event_client_is_cut_off(self) -> None:
        cut = "aiocluster_http_event_streams_cut_total"
        before = self.counter(cut)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", self.agent.port))
        slow.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            # A "cluster" event every 10 ms, key events of 2 KB values, and
            # never a read.
            def flood() -> bool:
                for _ in range(20):
                    value = b"%04d" % (time.monotonic_ns() % 10000)
                    self.agent.request("PUT", "/v1/keys/flood", value * 500)
                return self.counter(cut) == before + 1
            wait_until("the slow stream to be cut", flood)
            self.assertEqual(self.counter("aiocluster_http_event_streams"), 0)
            slow.settimeout(PATIENCE)
            while slow.recv(65536):
                pass  # what was sent, then the close
        finally:
            slow.close()
        # A client that reads keeps its stream.
        stream = EventStream(self.agent)
        try:
            for _ in range(20):
                stream.wait_for("cluster", lambda name, _: name == "cluster")
        finally:
            stream.close()
        self.assertEqual(before + 1, self.counter(cut))


if __name__ == "__main__":
    unittest.main(verbosity=2)
