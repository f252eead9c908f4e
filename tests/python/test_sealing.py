"""Sealed gossip from the Python package: a shared keyring forms a cluster, another key is kept
out, a rotation loses nothing, and a keyring file reads as the agent reads it."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from conftest import eventually, fast_config, free_port

from aiocluster import Cluster, Config, SealingConfig, SealMode, read_keyring_file


def key(fill: int) -> bytes:
    return bytes([fill]) * 32


def sealed(name: str, port: int, seeds: list[int], keys: list[bytes], mode: SealMode = SealMode.REQUIRED) -> Config:
    return fast_config(name, port, seeds, sealing=SealingConfig(keys, mode))


def names(cluster: Cluster) -> set[str]:
    return {node.name for node in cluster.live_nodes()}


async def test_a_shared_keyring_forms_a_cluster_and_another_key_is_kept_out() -> None:
    pa, pb, pc = free_port(), free_port(), free_port()
    a = Cluster(sealed("a", pa, [pb], [key(1)]), {"role": "a"})
    b = Cluster(sealed("b", pb, [pa], [key(1)]), {"role": "b"})
    # c knows both addresses but holds another key: everything it sends is refused unopened.
    c = Cluster(sealed("c", pc, [pa, pb], [key(2)]), {"role": "c"})
    async with a, b, c:
        await eventually(lambda: names(a) == {"a", "b"} and names(b) == {"a", "b"})
        await eventually(lambda: a.stats()["dropped_seal_unknown_key"] > 0)
        b.set("ready", "1")

        def a_sees_ready() -> bool:
            state = a.snapshot().node_states.get(b.self_node_id)
            return state is not None and state.get("ready") == "1"

        await eventually(a_sees_ready)
        await asyncio.sleep(0.5)  # ten rounds more: c never gets in, nor learns of anyone
        assert names(a) == {"a", "b"} and names(b) == {"a", "b"}
        assert names(c) == {"c"}
        assert a.seal_keys() == [key(1)]


async def test_a_plaintext_node_is_refused_by_a_node_that_requires_sealing() -> None:
    pa, pb = free_port(), free_port()
    a = Cluster(sealed("a", pa, [pb], [key(1)]))
    plain = Cluster(fast_config("plain", pb, [pa]))
    async with a, plain:
        await eventually(lambda: a.stats()["dropped_unsealed"] > 0)
        await asyncio.sleep(0.3)
        assert names(a) == {"a"} and names(plain) == {"plain"}


async def test_a_rotation_during_a_run_loses_no_member_and_no_key() -> None:
    ports = [free_port() for _ in range(3)]
    clusters = [Cluster(sealed(f"n{i}", port, [ports[(i + 1) % 3]], [key(1)])) for i, port in enumerate(ports)]
    everyone = {"n0", "n1", "n2"}
    async with clusters[0], clusters[1], clusters[2]:
        await eventually(lambda: all(names(c) == everyone for c in clusters))
        steps = [
            lambda c: c.install_key(key(7)),
            lambda c: c.make_primary_key(key(7)),
            lambda c: c.remove_key(key(1)),
        ]
        for step_number, step in enumerate(steps):
            for c in clusters:
                step(c)
                await asyncio.sleep(0.1)  # two rounds between nodes: mid-step, the ring is mixed
            for i, c in enumerate(clusters):
                c.set("step", str(step_number))
            await eventually(lambda: all(
                state.get("step") == str(step_number)
                for c in clusters for state in c.snapshot().node_states.values()))
            assert all(names(c) == everyone for c in clusters)
        assert all(c.seal_keys() == [key(7)] for c in clusters)
        assert all(c.stats()["dropped_seal_forged"] == 0 for c in clusters)
        assert all(c.stats()["dropped_seal_unknown_key"] == 0 for c in clusters)


async def test_a_keyring_goes_onto_a_running_cluster_mode_by_mode() -> None:
    pa, pb = free_port(), free_port()
    a = Cluster(fast_config("a", pa, [pb]))
    b = Cluster(fast_config("b", pb, [pa]))
    async with a, b:
        await eventually(lambda: names(a) == {"a", "b"})
        # Each step on every node, then a few rounds before the next: by REQUIRED, every packet
        # in flight is sealed, so nothing is refused on the way.
        for c in (a, b):
            c.install_key(key(3))
            c.set_seal_mode(SealMode.OPEN_ONLY)
        for mode in (SealMode.PERMISSIVE, SealMode.REQUIRED):
            await asyncio.sleep(0.2)
            for c in (a, b):
                c.set_seal_mode(mode)
        a.set("after", "1")

        def b_sees_after() -> bool:
            state = b.snapshot().node_states.get(a.self_node_id)
            return state is not None and state.get("after") == "1"

        await eventually(b_sees_after)
        assert names(a) == {"a", "b"} and names(b) == {"a", "b"}
        assert a.stats()["dropped_unsealed"] == 0


def test_sealing_configs_that_cannot_work_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sealing.keys"):
        SealingConfig([])
    with pytest.raises(ValueError, match="32 bytes"):
        SealingConfig([b"short"])
    with pytest.raises(ValueError, match="sealing"):
        fast_config("x", free_port(), [], sealing="not a config")
    with pytest.raises(ValueError, match="key"):
        Cluster(sealed("y", free_port(), [], [key(1)])).remove_key(b"short")
    with pytest.raises(ValueError):  # the primary cannot be removed
        Cluster(sealed("z", free_port(), [], [key(1)])).remove_key(key(1))


def test_a_keyring_file_reads_as_the_agent_reads_it(tmp_path: Path) -> None:
    primary, other = os.urandom(32), os.urandom(32)
    path = tmp_path / "keyring"
    path.write_text(f"# rotated 2026-12-01\n{base64.b64encode(primary).decode()}\n\n"
                    f"  {base64.b64encode(other).decode()}  \n")
    assert read_keyring_file(path) == [primary, other]
    assert SealingConfig.from_keyring_file(path, SealMode.PERMISSIVE) == SealingConfig([primary, other],
                                                                                     SealMode.PERMISSIVE)
    path.write_text("not base64!\n")
    with pytest.raises(ValueError, match=":1: not base64"):
        read_keyring_file(path)
    path.write_text(base64.b64encode(b"sixteen bytes!!!").decode() + "\n")
    with pytest.raises(ValueError, match="32 bytes"):
        read_keyring_file(path)
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no key"):
        read_keyring_file(path)
