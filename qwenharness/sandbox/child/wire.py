"""The plain-data channel between the test process and the candidate process.

Only plain data crosses it: None, bool, int, float, complex, str, bytes, list, tuple, dict, set and
frozenset, nested. A frame is an 8-byte big-endian length and a JSON text (ASCII) in which lists are
JSON arrays and every other container is a one-key object naming its type:
``{"t": [...]}`` tuple, ``{"s": [...]}`` set, ``{"f": [...]}`` frozenset, ``{"d": [[k, v], ...]}`` dict
(keys of any plain type), ``{"b": "hex"}`` bytes, ``{"c": [re, im]}`` complex.

`encode` runs on the sending side and turns subclasses of the plain types into their base type (a
namedtuple becomes a tuple, a Counter a dict, an IntEnum an int); anything else raises `NotPlain`.
`decode` runs on the receiving side and builds nothing but the built-in types, whatever the bytes
say, so a value from the candidate cannot carry methods of its own (no ``__eq__`` that accepts
everything). This module is imported inside the sandbox (standard library only).
"""

from __future__ import annotations

import json
import math
import os
import select
import time
from typing import Any

MAX_FRAME = 64 * 1024 * 1024  # bytes of one message
MAX_DEPTH = 200  # nesting of containers

_HEADER = 8


class NotPlain(TypeError):
    """A value that the channel cannot carry."""


class ChannelError(Exception):
    """A malformed, oversized or truncated frame, or a closed channel."""


class ChannelTimeout(ChannelError):
    """No complete frame before the deadline."""


def _to_json(x: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise NotPlain("nested deeper than the channel allows")
    if x is None or x is True or x is False:
        return x
    t = type(x)
    if t is str or t is int:
        return x
    if t is float:
        return x
    if t is list:
        return [_to_json(v, depth + 1) for v in x]
    if t is tuple:
        return {"t": [_to_json(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[_to_json(k, depth + 1), _to_json(v, depth + 1)] for k, v in x.items()]}
    if t is set:
        return {"s": [_to_json(v, depth + 1) for v in x]}
    if t is frozenset:
        return {"f": [_to_json(v, depth + 1) for v in x]}
    if t is bytes:
        return {"b": x.hex()}
    if t is complex:
        return {"c": [x.real, x.imag]}
    # subclasses: converted to the base type (the candidate's own methods stay on its side)
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int.__index__(x)
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bytes):
        return {"b": bytes(x).hex()}
    if isinstance(x, tuple):
        return {"t": [_to_json(v, depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, list):
        return [_to_json(v, depth + 1) for v in list.__iter__(x)]
    if isinstance(x, dict):
        return {"d": [[_to_json(k, depth + 1), _to_json(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, frozenset):
        return {"f": [_to_json(v, depth + 1) for v in frozenset.__iter__(x)]}
    if isinstance(x, set):
        return {"s": [_to_json(v, depth + 1) for v in set.__iter__(x)]}
    raise NotPlain(f"a value of type {type(x).__name__!s:.80} is not plain data")


def encode(value: Any) -> bytes:
    """One frame (header + JSON) carrying `value`; NotPlain if it is not plain data."""
    try:
        text = json.dumps(_to_json(value, 0), separators=(",", ":"), allow_nan=True)
    except RecursionError:
        raise NotPlain("nested deeper than the channel allows") from None
    body = text.encode("ascii")
    if len(body) > MAX_FRAME:
        raise NotPlain(f"a value of {len(body)} bytes is larger than the channel's {MAX_FRAME}")
    return len(body).to_bytes(_HEADER, "big") + body


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        raise ChannelError("malformed frame: an object with several keys")
    (tag, v), = obj.items()
    if tag == "t" and type(v) is list:
        return tuple(v)
    if tag == "d" and type(v) is list:
        out = {}
        for pair in v:
            if type(pair) is not list or len(pair) != 2:
                raise ChannelError("malformed frame: a dict entry is not a [key, value] pair")
            out[pair[0]] = pair[1]  # TypeError for an unhashable key
        return out
    if tag == "s" and type(v) is list:
        return set(v)
    if tag == "f" and type(v) is list:
        return frozenset(v)
    if tag == "b" and type(v) is str:
        return bytes.fromhex(v)
    if tag == "c" and type(v) is list and len(v) == 2 and all(type(p) in (int, float) for p in v):
        return complex(v[0], v[1])
    raise ChannelError(f"malformed frame: unknown tag {str(tag)[:20]!r}")


def decode(body: bytes) -> Any:
    """The plain value in a frame's body. ChannelError for anything malformed."""
    try:
        text = body.decode("ascii")
        return json.loads(text, object_hook=_hook, parse_constant=_constant)
    except ChannelError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as e:
        raise ChannelError(f"malformed frame: {type(e).__name__}") from None


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def send(fd: int, value: Any) -> None:
    write_all(fd, encode(value))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("no answer before the time limit")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise ChannelTimeout("no answer before the time limit")
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise ChannelError("the channel was closed")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def receive(fd: int, deadline: float | None = None) -> Any:
    """The next value on `fd` (a blocking pipe end); ChannelTimeout past `deadline` (time.monotonic)."""
    size = int.from_bytes(_read_exact(fd, _HEADER, deadline), "big")
    if size > MAX_FRAME:
        raise ChannelError(f"a frame of {size} bytes is larger than the channel's {MAX_FRAME}")
    return decode(_read_exact(fd, size, deadline))
