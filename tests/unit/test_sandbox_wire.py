"""The plain-data channel: what it carries, how exactly, and what it refuses."""

from __future__ import annotations

import collections
import enum
import math
import os

import pytest

from qwenharness.sandbox.child import wire


def roundtrip(value: object) -> object:
    frame = wire.encode(value)
    assert int.from_bytes(frame[:8], "big") == len(frame) - 8
    return wire.decode(frame[8:])


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 10 ** 100, 1.5, -0.0, 1e308, 5e-324, "", "héllo\n\x00", "\ud800", b"", b"\x00\xff",
    [], (), {}, set(), frozenset(), [1, [2, [3]]], (1,), {"a": 1, 2: [3], (4, 5): {6}, None: frozenset({7})},
    {1, "a", (2, 3)}, 3 + 4j, [float("inf"), -float("inf")],
])
def test_plain_values_round_trip_exactly(value: object) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)


def test_nan_round_trips() -> None:
    assert math.isnan(roundtrip(float("nan")))  # type: ignore[arg-type]


def test_subclasses_become_their_base_type() -> None:
    class Color(enum.IntEnum):
        RED = 1

    Point = collections.namedtuple("Point", "x y")
    assert type(roundtrip(Color.RED)) is int
    back = roundtrip([Point(1, 2), collections.Counter("aab"), collections.OrderedDict(a=1)])
    assert back == [(1, 2), {"a": 2, "b": 1}, {"a": 1}]
    assert [type(v) for v in back] == [tuple, dict, dict]  # type: ignore[union-attr]


def test_an_object_that_equals_everything_does_not_cross() -> None:
    class Everything:
        def __eq__(self, other: object) -> bool:
            return True

    with pytest.raises(wire.NotPlain):
        wire.encode(Everything())
    with pytest.raises(wire.NotPlain):
        wire.encode([1, Everything()])
    with pytest.raises(wire.NotPlain):
        wire.encode(lambda: 1)


def test_an_int_subclass_with_a_lying_eq_arrives_as_a_plain_int() -> None:
    class Liar(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    back = roundtrip(Liar(3))
    assert type(back) is int and back == 3 and back != 4


@pytest.mark.parametrize("body", [
    b"", b"x", b"i12", b"s5:abc", b"l3:nn", b"d1:l0:n", b"S1:l0:", b"nn", b"s-1:", b"l99999999999:",
    b"f0x1p;", b"c1;", b"q", b"b9:ab",
])
def test_malformed_frames_are_refused(body: bytes) -> None:
    with pytest.raises(wire.ChannelError):
        wire.decode(body)


def test_deep_nesting_is_refused_both_ways() -> None:
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.NotPlain):
        wire.encode(deep)
    with pytest.raises(wire.ChannelError):
        wire.decode(b"l1:" * (wire.MAX_DEPTH + 5) + b"n")


def test_oversized_frames_are_refused_before_reading_them() -> None:
    r, w = os.pipe()
    try:
        os.write(w, (wire.MAX_FRAME + 1).to_bytes(8, "big"))
        with pytest.raises(wire.ChannelError):
            wire.receive(r)
    finally:
        os.close(r)
        os.close(w)


def test_receive_times_out_and_notices_a_closed_pipe() -> None:
    import time

    r, w = os.pipe()
    try:
        with pytest.raises(wire.ChannelTimeout):
            wire.receive(r, deadline=time.monotonic() + 0.05)
        os.write(w, wire.encode([1, 2])[:5])
        os.close(w)
        w = -1
        with pytest.raises(wire.ChannelError):
            wire.receive(r)
    finally:
        os.close(r)
        if w != -1:
            os.close(w)
