"""aiocluster._core, the sans-IO module under the package (documented in _core.pyi): time as
float seconds or int nanoseconds, and two nodes run by hand through StreamExchange."""

from __future__ import annotations

import pytest

from aiocluster import _core

Action = _core.StreamExchange.Action


def settings(name: str, port: int, seed: int) -> dict[str, object]:
    return {"cluster_id": "core", "node_id": (name, 1, "127.0.0.1", port, None), "seeds": [("127.0.0.1", seed)],
            "gossip_interval": 1.0, "gossip_count": 3, "max_payload_size": 65507,
            "marked_for_deletion_grace_period": 7200.0, "phi_threshold": 8.0, "sampling_window_size": 1000,
            "max_interval": 10.0, "initial_interval": 5.0, "dead_node_grace_period": 86400.0}


def test_now_is_float_seconds_or_int_nanoseconds() -> None:
    by_float = _core.Node(settings("a", 1, 2), 100.25, 7)
    by_int = _core.Node(settings("a", 1, 2), 100_250_000_000, 7)
    by_float.handle_timeout(100.25)
    by_int.handle_timeout(100_250_000_000)
    assert by_float.poll_timeout() == pytest.approx(101.25) == by_int.poll_timeout()


def test_a_bad_setting_raises_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="^gossip_count:"):
        _core.Node({**settings("a", 1, 2), "gossip_count": 0}, 0, 1)


def frames(exchange: _core.StreamExchange) -> tuple[list[bytes], bool]:
    """The frames `exchange` writes until it reads or closes, and whether it closed."""
    out: list[bytes] = []
    while True:
        action, frame = exchange.next()
        if action == Action.WRITE:
            assert frame is not None
            out.append(frame)
        else:
            return out, action == Action.CLOSE


def test_one_exchange_by_hand() -> None:
    a = _core.Node(settings("a", 1, 2), 10.0, 1, [("k", "from-a")])
    b = _core.Node(settings("b", 2, 1), 10.0, 2, [("k", "from-b")])
    a.handle_timeout(10.0)
    host, port, tls_name, syn = a.poll_transmit()
    assert (host, port, tls_name) == ("127.0.0.1", 2, None)
    initiator, responder = _core.StreamExchange.initiate(syn), _core.StreamExchange.respond()
    decoder = _core.FrameDecoder(1 << 20)
    sender, receiver, node = initiator, responder, b
    while True:
        written, closed = frames(sender)
        for frame in written:
            assert decoder.feed(frame) == len(frame)
            payload = decoder.next_frame()
            assert payload is not None
            receiver.on_frame(node, payload, 10.0)
        if closed and not written:
            break
        sender, receiver = receiver, sender
        node = a if node is b else b
    assert initiator.completed and responder.completed
    assert {state[0][0] for state in a.snapshot()} == {"a", "b"}
    kinds = [event[0] for event in a.poll_events()]
    assert "key" in kinds
    assert b.snapshot()[0][5]["k"] == ("from-a", 1, 0, 0.0)


def test_the_frame_decoder_refuses_empty_and_oversized_frames() -> None:
    empty = _core.FrameDecoder(1024)
    empty.feed(b"\0\0\0\0")
    assert empty.error == "empty frame"
    large = _core.FrameDecoder(1024)
    large.feed((1025).to_bytes(4, "big"))
    assert large.error == "frame too large"
