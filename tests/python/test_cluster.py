"""The package through its public API: lifecycle, propagation, hooks, membership, bad configs."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from conftest import INTERVAL, eventually, fast_config, free_port

from aiocluster import (Cluster, ClusterSnapshot, FailureDetectorConfig, HookStats, NodeId,
                        VersionedValue, VersionStatusEnum)


async def test_construction_start_and_close() -> None:
    port = free_port()
    cluster = Cluster(fast_config("solo", port, [port]), initial_key_values={"role": "db"})
    assert cluster.get("role") == "db"  # before start
    assert cluster.self_node_id.name == "solo"
    await cluster.start()
    assert cluster.live_nodes() == [cluster.self_node_id]
    assert cluster.dead_nodes() == []
    cluster.set("k", "v")
    assert cluster.get("k") == "v"
    versioned = cluster.get_versioned("k")
    assert versioned is not None and versioned.status == VersionStatusEnum.SET and versioned.version == 2
    await cluster.close()
    await cluster.close()  # idempotent
    # The port is free again.
    async with Cluster(fast_config("again", port, [])) as again:
        assert again.get("role") is None


def test_node_id_is_a_frozen_value() -> None:
    a = NodeId(name="n", generation_id=5, gossip_advertise_addr=("h", 1))
    assert a == NodeId("n", 5, ("h", 1)) and hash(a) == hash(NodeId("n", 5, ("h", 1)))
    assert a != NodeId("n", 6, ("h", 1)) and a != NodeId("n", 5, ("h", 1), tls_name="t")
    assert NodeId("x").generation_id > 0 and NodeId("x").gossip_advertise_addr == ("localhost", 7001)
    assert "n" in a.long_name()
    with pytest.raises(AttributeError):
        a.name = "m"  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"cluster_id": ""}, "cluster_id"),
        ({"gossip_interval": 0}, "gossip_interval"),
        ({"gossip_count": 0}, "gossip_count"),
        ({"seed_nodes": [("127.0.0.1", 0)]}, "seed_nodes"),
        ({"max_payload_size": 10}, "max_payload_size"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"write_timeout": 0}, "write_timeout"),
        ({"max_concurrent_gossip": 0}, "max_concurrent_gossip"),
        ({"hook_queue_maxsize": 0}, "hook_queue_maxsize"),
        ({"marked_for_deletion_grace_period": 0}, "marked_for_deletion_grace_period"),
        ({"tls_server_context": "not a context"}, "tls_server_context"),
        ({"node_id": NodeId(name="", gossip_advertise_addr=("127.0.0.1", 1))}, "node_id.name"),
        ({"node_id": NodeId(name="n", gossip_advertise_addr=("127.0.0.1", 0))}, "node_id.gossip_advertise_addr"),
    ],
)
def test_bad_config_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        fast_config("bad", 7999, [], **overrides)


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"phi_threshhold": 0}, "failure_detector.phi_threshhold"),
        ({"sampling_window_size": 0}, "failure_detector.sampling_window_size"),
        ({"initial_interval": timedelta(0)}, "failure_detector.initial_interval"),
        ({"max_interval": timedelta(seconds=-1)}, "failure_detector.max_interval"),
        ({"dead_node_grace_period": timedelta(0)}, "failure_detector.dead_node_grace_period"),
    ],
)
def test_bad_failure_detector_config_names_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        FailureDetectorConfig(**settings)  # type: ignore[arg-type]


def test_a_config_changed_after_construction_is_checked_by_the_cluster() -> None:
    config = fast_config("late", 7998, [])
    config.gossip_count = 0
    with pytest.raises(ValueError, match="^gossip_count:"):
        Cluster(config)


async def test_two_clusters_propagate_set_delete_and_ttl() -> None:
    pa, pb = free_port(), free_port()
    async with Cluster(fast_config("a", pa, [pb]), {"color": "red"}) as a, \
            Cluster(fast_config("b", pb, [pa])) as b:

        def b_sees(key: str) -> VersionedValue | None:
            state = b.snapshot().node_states.get(a.self_node_id)
            return None if state is None else state.get_versioned(key)

        await eventually(lambda: (v := b_sees("color")) is not None and v.value == "red")
        a.set("color", "blue")
        await eventually(lambda: (v := b_sees("color")) is not None and v.value == "blue")
        a.delete("color")
        await eventually(lambda: (v := b_sees("color")) is not None and v.is_deleted())
        assert b.snapshot().node_states[a.self_node_id].get("color") is None
        a.set_with_ttl("lease", "holder")
        await eventually(lambda: (v := b_sees("lease")) is not None
                         and v.status == VersionStatusEnum.DELETE_AFTER_TTL)
        assert b.snapshot().node_states[a.self_node_id].get("lease") == "holder"  # readable until GC
        a.set("temp", "x")
        a.delete_after_ttl("temp")
        await eventually(lambda: (v := b_sees("temp")) is not None
                         and v.status == VersionStatusEnum.DELETE_AFTER_TTL and v.value == "x")
        assert set(b.live_nodes()) == {a.self_node_id, b.self_node_id}


def test_two_clusters_on_uvloop() -> None:
    """An application that installs uvloop (python3-uvloop) gets a working cluster: uvloop's
    transports are asyncio's only in shape."""
    import uvloop

    async def run() -> None:
        pa, pb = free_port(), free_port()
        async with Cluster(fast_config("a", pa, [pb]), {"color": "red"}) as a, \
                Cluster(fast_config("b", pb, [pa])) as b:
            def b_sees_red() -> bool:
                state = b.snapshot().node_states.get(a.self_node_id)
                return state is not None and state.get("color") == "red"
            await eventually(b_sees_red)
            await eventually(lambda: set(a.live_nodes()) == {a.self_node_id, b.self_node_id})
            # Once both listen, no exchange fails (the very first dial may find b not yet there).
            failed = a.stats()["exchanges_failed"] + b.stats()["exchanges_failed"]
            rounds = a.stats()["rounds"]
            await asyncio.sleep(10 * INTERVAL)
            assert a.stats()["rounds"] >= rounds + 5
            assert a.stats()["exchanges_failed"] + b.stats()["exchanges_failed"] == failed

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


async def test_tombstones_tell_when_their_status_changed() -> None:
    """status_change_ts: time.monotonic() when a key got a deleting status, here and on a replica;
    0.0 for a SET value."""
    pa, pb = free_port(), free_port()
    async with Cluster(fast_config("a", pa, [pb])) as a, Cluster(fast_config("b", pb, [pa])) as b:
        seen: list[VersionedValue] = []

        async def record(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            if node == a.self_node_id and key == "k" and new.is_deleted():
                seen.append(new)
        b.on_key_change(record)

        a.set("k", "v")
        assert a.get_versioned("k") == VersionedValue("v", 1, VersionStatusEnum.SET, 0.0)
        before = time.monotonic()
        a.delete("k")
        deleted = a.get_versioned("k")
        assert deleted is not None and before <= deleted.status_change_ts <= time.monotonic()
        await asyncio.sleep(0.05)
        a.set_with_ttl("lease", "x")
        lease = a.get_versioned("lease")
        assert lease is not None and lease.status_change_ts >= deleted.status_change_ts + 0.05
        assert a.snapshot().node_states[a.self_node_id].key_values["lease"] == lease

        def b_sees(key: str) -> VersionedValue | None:
            state = b.snapshot().node_states.get(a.self_node_id)
            return None if state is None else state.get_versioned(key)

        # A replica stamps a tombstone when it stores it, in the same clock.
        await eventually(lambda: (v := b_sees("lease")) is not None and v.status_change_ts > 0)
        replica = b_sees("k")
        assert replica is not None and replica.is_deleted()
        assert deleted.status_change_ts <= replica.status_change_ts <= time.monotonic()
        assert b_sees("lease").status_change_ts >= lease.status_change_ts  # type: ignore[union-attr]
        await eventually(lambda: len(seen) == 1)
        assert seen[0].status_change_ts == replica.status_change_ts


async def test_ttl_keys_are_collected_after_the_grace_period() -> None:
    pa, pb = free_port(), free_port()
    grace = 0.3
    async with Cluster(fast_config("a", pa, [pb], marked_for_deletion_grace_period=grace)) as a, \
            Cluster(fast_config("b", pb, [pa], marked_for_deletion_grace_period=grace)) as b:
        a.set_with_ttl("lease", "holder")
        a.set("keep", "1")
        await eventually(lambda: a.self_node_id in b.snapshot().node_states
                         and b.snapshot().node_states[a.self_node_id].get("keep") == "1")
        await eventually(lambda: a.get_versioned("lease") is None)
        state = a.snapshot().node_states[a.self_node_id]
        assert state.last_gc_version >= 1 and "lease" not in state.key_values


async def test_three_clusters_converge_in_one_loop() -> None:
    ports = [free_port() for _ in range(3)]
    seeds = [ports[2], ports[0], ports[1]]  # as the quick start: 1 <- 3, 2 <- 1, 3 <- 2
    clusters = [Cluster(fast_config(f"n{i}", ports[i], [seeds[i]]), {"cluster": str(i)}) for i in range(3)]
    for c in clusters:
        await c.start()
    try:
        def converged() -> bool:
            for c in clusters:
                snap: ClusterSnapshot = c.snapshot()
                if len(snap.live_nodes) != 3:
                    return False
                if {n.name: s.get("cluster") for n, s in snap.node_states.items()} != {"n0": "0", "n1": "1", "n2": "2"}:
                    return False
            return True
        await eventually(converged)
        clusters[1].delete("cluster")
        await eventually(lambda: all(c.snapshot().node_states[clusters[1].self_node_id].get("cluster") is None
                                     for c in clusters))
    finally:
        for c in clusters:
            await c.close()


async def test_join_and_leave_when_a_cluster_stops() -> None:
    pa, pb = free_port(), free_port()
    joined: list[NodeId] = []
    left: list[NodeId] = []
    a = Cluster(fast_config("a", pa, [pb]))

    async def on_join(node: NodeId) -> None:
        joined.append(node)

    async def on_leave(node: NodeId) -> None:
        left.append(node)

    a.on_node_join(on_join)
    a.on_node_leave(on_leave)
    async with a:
        b = Cluster(fast_config("b", pb, [pa]))
        await b.start()
        await eventually(lambda: b.self_node_id in joined)
        assert b.self_node_id in a.live_nodes()
        await b.close()
        await eventually(lambda: b.self_node_id in left)
        assert b.self_node_id in a.dead_nodes() and b.self_node_id not in a.live_nodes()
        assert a.snapshot().dead_nodes == [b.self_node_id]


async def test_hooks_run_in_the_background_in_registration_order() -> None:
    port = free_port()
    calls: list[tuple[str, str, str | None, str]] = []
    release = asyncio.Event()
    async with Cluster(fast_config("h", port, [])) as cluster:

        async def first(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            await release.wait()  # a slow hook holds back no mutation
            calls.append(("first", key, None if old is None else old.value, new.value))

        async def second(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            assert node == cluster.self_node_id
            calls.append(("second", key, None if old is None else old.value, new.value))

        cluster.on_key_change(first)
        cluster.on_key_change(second)
        cluster.set("k", "1")
        cluster.set("k", "2")
        assert cluster.get("k") == "2" and calls == []
        await asyncio.sleep(0.05)
        assert calls == []  # still waiting on the first hook
        release.set()
        await eventually(lambda: len(calls) == 4)
        assert calls == [("first", "k", None, "1"), ("second", "k", None, "1"),
                         ("first", "k", "1", "2"), ("second", "k", "1", "2")]
        assert cluster.hook_stats() == HookStats(enqueued=4, processed=4, dropped=0, errors=0, queue_size=0)


async def test_a_full_hook_queue_drops_and_counts() -> None:
    port = free_port()
    release = asyncio.Event()
    seen: list[str] = []
    async with Cluster(fast_config("q", port, [], hook_queue_maxsize=2)) as cluster:

        async def slow(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            await release.wait()
            seen.append(key)

        cluster.on_key_change(slow)
        cluster.set("k0", "v")
        await asyncio.sleep(0.01)  # the worker takes k0 and waits on it
        for i in range(1, 6):
            cluster.set(f"k{i}", "v")  # k1, k2 queue; k3..k5 are dropped
        stats = cluster.hook_stats()
        assert (stats.enqueued, stats.dropped, stats.queue_size) == (3, 3, 2)
        release.set()
        await eventually(lambda: len(seen) == 3)
        assert seen == ["k0", "k1", "k2"]


async def test_a_failing_hook_is_counted_and_the_others_still_run() -> None:
    port = free_port()
    seen: list[str] = []
    async with Cluster(fast_config("e", port, [])) as cluster:

        async def broken(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            raise RuntimeError("hook failure (expected by the test)")

        async def fine(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
            seen.append(key)

        cluster.on_key_change(broken)
        cluster.on_key_change(fine)
        cluster.set("a", "1")
        cluster.set("b", "1")
        await eventually(lambda: cluster.hook_stats().processed == 4)
        assert seen == ["a", "b"]
        assert cluster.hook_stats().errors == 2


async def test_close_drains_the_hook_queue() -> None:
    port = free_port()
    seen: list[str] = []
    cluster = Cluster(fast_config("d", port, [], hook_shutdown_timeout=5.0))

    async def slowish(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
        await asyncio.sleep(0.02)
        seen.append(key)

    cluster.on_key_change(slowish)
    await cluster.start()
    for i in range(5):
        cluster.set(f"k{i}", "v")
    await cluster.close()
    assert seen == [f"k{i}" for i in range(5)]
    assert cluster.hook_stats().processed == 5 and cluster.hook_stats().dropped == 0


async def test_close_drains_only_within_the_shutdown_timeout() -> None:
    port = free_port()
    cluster = Cluster(fast_config("t", port, [], hook_shutdown_timeout=0.1))

    async def stuck(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
        await asyncio.sleep(3600)

    cluster.on_key_change(stuck)
    await cluster.start()
    cluster.set("a", "1")
    cluster.set("b", "1")
    await asyncio.wait_for(cluster.close(), 2.0)
    stats = cluster.hook_stats()
    assert (stats.processed, stats.dropped, stats.queue_size) == (0, 2, 0)


async def test_close_without_draining_cancels_the_running_hook() -> None:
    port = free_port()
    started = asyncio.Event()
    cancelled: list[bool] = []
    cluster = Cluster(fast_config("c", port, [], drain_hooks_on_shutdown=False))

    async def long(node: NodeId, key: str, old: VersionedValue | None, new: VersionedValue) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    cluster.on_key_change(long)
    await cluster.start()
    cluster.set("a", "1")
    cluster.set("b", "1")
    await started.wait()
    await asyncio.wait_for(cluster.close(), 1.0)
    assert cancelled == [True]
    stats = cluster.hook_stats()
    assert (stats.enqueued, stats.processed, stats.dropped) == (2, 0, 2)


async def test_another_cluster_id_is_refused() -> None:
    pa, pb = free_port(), free_port()
    async with Cluster(fast_config("a", pa, [pb])) as a, \
            Cluster(fast_config("b", pb, [pa], cluster_id="other")) as b:
        await eventually(lambda: a.stats()["dropped_wrong_cluster"] > 0 or b.stats()["dropped_wrong_cluster"] > 0)
        await asyncio.sleep(5 * INTERVAL)
        assert a.live_nodes() == [a.self_node_id] and b.live_nodes() == [b.self_node_id]
        assert b.self_node_id not in a.snapshot().node_states


async def test_bad_input_from_the_network_is_dropped_and_counted() -> None:
    pa, pb = free_port(), free_port()
    async with Cluster(fast_config("a", pa, [])) as a:

        async def send(data: bytes) -> bytes:
            """Sends `data` on a fresh connection; returns what comes back before the server closes."""
            reader, writer = await asyncio.open_connection("127.0.0.1", pa)
            try:
                writer.write(data)
                await writer.drain()
                return await asyncio.wait_for(reader.read(), 2.0)
            except ConnectionResetError:  # closed with our bytes unread
                return b""
            finally:
                writer.close()

        assert await send(len(b"\xff\xff\xff").to_bytes(4, "big") + b"\xff\xff\xff") == b""  # not a PacketPb
        assert await send((0).to_bytes(4, "big")) == b""  # an empty frame
        assert await send((64 * 1024 * 1024).to_bytes(4, "big")) == b""  # far too large
        await eventually(lambda: a.stats()["dropped_malformed"] == 1 and a.stats()["exchanges_failed"] == 2)
        # It still serves real peers.
        async with Cluster(fast_config("b", pb, [pa])) as b:
            await eventually(lambda: b.self_node_id in a.live_nodes() and a.self_node_id in b.live_nodes())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_close_in_the_iteration_a_dial_connects(monkeypatch: pytest.MonkeyPatch, loop_kind: str) -> None:
    """close() called in the loop iteration in which a dial's connection completes. Cancelling
    that dial made uvloop close its transport without connection_lost, and close() then waited
    for that exchange forever (CI, stop 24). The close starts from inside connection_made, the
    one place that lands it in that iteration every time."""
    import uvloop
    from aiocluster import _driver

    made = _driver.Exchange.connection_made
    closing: list[asyncio.Task[None]] = []

    async def run() -> None:
        pa, pb = free_port(), free_port()
        async with Cluster(fast_config("b", pb, [])):
            a = Cluster(fast_config("a", pa, [pb]))

            def connection_made(exchange: _driver.Exchange, transport: asyncio.BaseTransport) -> None:
                made(exchange, transport)
                if exchange.target is not None and not closing:
                    closing.append(asyncio.get_running_loop().create_task(a.close()))

            monkeypatch.setattr(_driver.Exchange, "connection_made", connection_made)
            await a.start()
            await eventually(lambda: bool(closing))
            await asyncio.wait_for(closing[0], 5)
            assert not a._driver._open and not a._driver._busy_targets

    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
