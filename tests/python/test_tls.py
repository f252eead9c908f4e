"""Mutual TLS through ssl.SSLContext objects, with certificates made by the openssl CLI."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from conftest import INTERVAL, eventually, fast_config, free_port

from aiocluster import Cluster, NodeId


class Pki:
    """A throwaway CA (EC P-256) in a temporary directory; no key is checked in."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.pem"
        self._ca_key = directory / "ca.key"
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", self._ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=aiocluster test CA")

    def _openssl(self, *args: object) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    def issue(self, name: str) -> tuple[Path, Path]:
        """A certificate for DNS name `name` (also its CN) and IP 127.0.0.1: (cert, key)."""
        key, csr, cert = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name},IP:127.0.0.1\n")
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self._ca_key, "-CAcreateserial",
                      "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def contexts(self, name: str) -> dict[str, ssl.SSLContext]:
        """Server and client contexts of a node whose certificate names `name`, both verifying peers."""
        cert, key = self.issue(name)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca)
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_cert_chain(cert, key)
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        client.load_cert_chain(cert, key)
        return {"tls_server_context": server, "tls_client_context": client}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_config(pki: Pki, name: str, port: int, seeds: list[int], tls_name: str, cert_name: str | None = None):  # type: ignore[no-untyped-def]
    return fast_config(name, port, seeds,
                       node_id=NodeId(name=name, gossip_advertise_addr=("127.0.0.1", port), tls_name=tls_name),
                       **pki.contexts(cert_name or tls_name))


async def test_mutual_tls_with_matching_names_converges(pki: Pki) -> None:
    pa, pb, pc = free_port(), free_port(), free_port()
    async with Cluster(tls_config(pki, "a", pa, [pb], "a.test"), {"k": "a"}) as a, \
            Cluster(tls_config(pki, "b", pb, [pa], "b.test"), {"k": "b"}) as b, \
            Cluster(tls_config(pki, "c", pc, [pa], "c.test"), {"k": "c"}) as c:
        clusters = [a, b, c]
        await eventually(lambda: all(len(x.live_nodes()) == 3 for x in clusters))
        for x in clusters:
            assert {n.name: s.get("k") for n, s in x.snapshot().node_states.items()} == {"a": "a", "b": "b", "c": "c"}
            assert x.stats()["dropped_tls_name"] == 0


async def test_mutual_tls_refuses_a_node_whose_certificate_names_another(pki: Pki) -> None:
    pa, pm = free_port(), free_port()
    # m's certificate says "m.test", but it claims to be the node with tls_name "a-twin.test".
    async with Cluster(tls_config(pki, "a", pa, [], "a.test")) as a, \
            Cluster(tls_config(pki, "m", pm, [pa], "a-twin.test", cert_name="m.test")) as m:
        await eventually(lambda: a.stats()["dropped_tls_name"] >= 3)
        assert m.self_node_id not in a.snapshot().node_states
        assert a.self_node_id not in m.snapshot().node_states
        assert a.live_nodes() == [a.self_node_id]


async def test_a_client_without_a_certificate_is_refused(pki: Pki) -> None:
    pa, pp = free_port(), free_port()
    contexts = pki.contexts("plain.test")
    anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki.ca)  # no certificate
    async with Cluster(tls_config(pki, "a", pa, [], "a.test")) as a, \
            Cluster(fast_config("p", pp, [pa], tls_server_context=contexts["tls_server_context"],
                                tls_client_context=anonymous)) as p:
        await eventually(lambda: p.stats()["exchanges_failed"] >= 3)
        await asyncio.sleep(2 * INTERVAL)
        assert a.live_nodes() == [a.self_node_id] and p.self_node_id not in a.snapshot().node_states


@pytest.mark.parametrize("expected, joins", [("a.test", True), ("someone-else.test", False)])
async def test_tls_server_hostname_is_the_name_expected_from_servers(pki: Pki, expected: str, joins: bool) -> None:
    pa, pc = free_port(), free_port()
    async with Cluster(tls_config(pki, "a", pa, [], "a.test")) as a, \
            Cluster(fast_config("c", pc, [pa], tls_server_hostname=expected,
                                node_id=NodeId(name="c", gossip_advertise_addr=("127.0.0.1", pc), tls_name="c.test"),
                                **pki.contexts("c.test"))) as c:
        if joins:
            await eventually(lambda: a.self_node_id in c.live_nodes() and c.self_node_id in a.live_nodes())
        else:
            await eventually(lambda: c.stats()["exchanges_failed"] >= 3)
            assert a.self_node_id not in c.snapshot().node_states
            assert c.self_node_id not in a.snapshot().node_states


async def test_a_silent_client_is_dropped_after_read_timeout(pki: Pki) -> None:
    pa = free_port()
    async with Cluster(fast_config("a", pa, [], read_timeout=0.2,
                                   node_id=NodeId(name="a", gossip_advertise_addr=("127.0.0.1", pa), tls_name="a.test"),
                                   **pki.contexts("a.test"))):
        reader, writer = await asyncio.open_connection("127.0.0.1", pa)  # no TLS handshake at all
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
        assert asyncio.get_running_loop().time() - started < 2.0  # not asyncio's 60 s
        writer.close()
