"""The plain-data channel between the test process and the candidate process.

Only plain data crosses it: None, bool, int, float, complex, str, bytes, list, tuple, dict, set and
frozenset, nested. A frame is an 8-byte big-endian length and a body in a small tagged format,
written and read by this module alone (so the children import nothing beyond builtins, ``select``
and ``time``: start-up time matters, one candidate process per sample):

    n  None        T / F  True / False      i<decimal>;  int      f<float.hex()>;  float
    c<re hex>,<im hex>;  complex            s<n>:<n bytes of UTF-8>  str    b<n>:<n bytes>  bytes
    l / t / S / z <count>:<items>  list / tuple / set / frozenset    d<count>:<key value ...>  dict

`encode` runs on the sending side and turns subclasses of the plain types into their base type (a
namedtuple becomes a tuple, a Counter a dict, an IntEnum an int); anything else raises `NotPlain`.
`decode` runs on the receiving side and builds nothing but the built-in types, whatever the bytes
say, so a value from the candidate cannot carry methods of its own (no ``__eq__`` that accepts
everything). Malformed, oversized or too deeply nested input raises `ChannelError`.
"""

import os
import select
import time

MAX_FRAME = 64 * 1024 * 1024  # bytes of one message
MAX_DEPTH = 200  # nesting of containers

_HEADER = 8


class NotPlain(TypeError):
    """A value that the channel cannot carry."""


class ChannelError(Exception):
    """A malformed, oversized or truncated frame, or a closed channel."""


class ChannelTimeout(ChannelError):
    """No complete frame before the deadline."""


def _items(tag, values, out, depth):
    values = list(values)
    out.append(tag + str(len(values)).encode() + b":")
    for v in values:
        _enc(v, out, depth + 1)


def _enc(x, out, depth):
    if depth > MAX_DEPTH:
        raise NotPlain("nested deeper than the channel allows")
    if x is None:
        out.append(b"n")
        return
    if x is True or x is False:
        out.append(b"T" if x else b"F")
        return
    t = type(x)
    if t is not int and t is not float and t is not str and t is not list and t is not tuple \
            and t is not dict and t is not set and t is not frozenset and t is not bytes and t is not complex:
        x = _base(x)  # a subclass becomes its base type; anything else raises NotPlain
        t = type(x)
        if x is True or x is False:
            out.append(b"T" if x else b"F")
            return
    if t is int:
        out.append(b"i" + int.__repr__(x).encode() + b";")
    elif t is float:
        out.append(b"f" + float.hex(x).encode() + b";")
    elif t is str:
        data = x.encode("utf-8", "surrogatepass")
        out.append(b"s" + str(len(data)).encode() + b":")
        out.append(data)
    elif t is list:
        _items(b"l", x, out, depth)
    elif t is tuple:
        _items(b"t", x, out, depth)
    elif t is dict:
        out.append(b"d" + str(len(x)).encode() + b":")
        for k, v in list(x.items()):
            _enc(k, out, depth + 1)
            _enc(v, out, depth + 1)
    elif t is set:
        _items(b"S", x, out, depth)
    elif t is frozenset:
        _items(b"z", x, out, depth)
    elif t is bytes:
        out.append(b"b" + str(len(x)).encode() + b":")
        out.append(x)
    else:  # complex
        out.append(b"c" + float.hex(x.real).encode() + b"," + float.hex(x.imag).encode() + b";")


def _base(x):
    if isinstance(x, bool):
        return bool(int.__index__(x))
    if isinstance(x, int):
        return int(int.__index__(x))
    if isinstance(x, float):
        return float(float.__float__(x))
    if isinstance(x, complex):
        return complex(complex.__complex__(x)) if hasattr(complex, "__complex__") else complex(x.real, x.imag)
    if isinstance(x, str):
        return "".join(str.__iter__(x))
    if isinstance(x, bytes):
        return bytes(bytes.__iter__(x))
    if isinstance(x, tuple):
        return tuple(tuple.__iter__(x))
    if isinstance(x, list):
        return list(list.__iter__(x))
    if isinstance(x, dict):
        return {k: dict.__getitem__(x, k) for k in dict.__iter__(x)}
    if isinstance(x, frozenset):
        return frozenset(frozenset.__iter__(x))
    if isinstance(x, set):
        return set(set.__iter__(x))
    name = type(x).__name__
    raise NotPlain(f"a value of type {name if type(name) is str else '?'!s:.80} is not plain data")


def encode(value) -> bytes:
    """One frame (header + body) carrying `value`; NotPlain if it is not plain data."""
    out: list = []
    try:
        _enc(value, out, 0)
    except RecursionError:
        raise NotPlain("nested deeper than the channel allows") from None
    body = b"".join(out)
    if len(body) > MAX_FRAME:
        raise NotPlain(f"a value of {len(body)} bytes is larger than the channel's {MAX_FRAME}")
    return len(body).to_bytes(_HEADER, "big") + body


_CONTAINERS = {ord("l"): list, ord("t"): tuple, ord("S"): set, ord("z"): frozenset}


def _dec(buf, i, depth):
    if depth > MAX_DEPTH:
        raise ChannelError("malformed frame: nested too deeply")
    tag = buf[i]
    i += 1
    if tag == 110:  # n
        return None, i
    if tag == 84:  # T
        return True, i
    if tag == 70:  # F
        return False, i
    if tag == 105:  # i
        j = buf.index(b";", i)
        return int(buf[i:j].decode("ascii")), j + 1
    if tag == 102:  # f
        j = buf.index(b";", i)
        return float.fromhex(buf[i:j].decode("ascii")), j + 1
    if tag == 99:  # c
        j = buf.index(b";", i)
        re_, im = buf[i:j].decode("ascii").split(",")
        return complex(float.fromhex(re_), float.fromhex(im)), j + 1
    j = buf.index(b":", i, i + 24)
    n = int(buf[i:j].decode("ascii"))
    i = j + 1
    if n < 0 or n > len(buf) - i:
        raise ChannelError("malformed frame: a length beyond the frame")
    if tag == 115:  # s
        return buf[i:i + n].decode("utf-8", "surrogatepass"), i + n
    if tag == 98:  # b
        return bytes(buf[i:i + n]), i + n
    if tag == 100:  # d
        out = {}
        for _ in range(n):
            k, i = _dec(buf, i, depth + 1)
            v, i = _dec(buf, i, depth + 1)
            out[k] = v  # TypeError for an unhashable key
        return out, i
    kind = _CONTAINERS.get(tag)
    if kind is None:
        raise ChannelError("malformed frame: unknown tag")
    items = []
    for _ in range(n):
        v, i = _dec(buf, i, depth + 1)
        items.append(v)
    return (items if kind is list else kind(items)), i


def decode(body: bytes):
    """The plain value in a frame's body. ChannelError for anything malformed."""
    try:
        value, end = _dec(body, 0, 0)
    except ChannelError:
        raise
    except (ValueError, TypeError, IndexError, RecursionError, MemoryError, OverflowError) as e:
        raise ChannelError(f"malformed frame: {type(e).__name__}") from None
    if end != len(body):
        raise ChannelError("malformed frame: bytes after the value")
    return value


def send(fd: int, value) -> None:
    write_all(fd, encode(value))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def wait_readable(fd: int, seconds: float) -> bool:
    """True once `fd` is readable (or at its end), False after `seconds` (poll: any fd number, where
    select() stops at 1024, which a harness holding an inference engine can pass)."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(p.poll(max(0, int(seconds * 1000) + 1)))


def _read_exact(fd: int, n: int, deadline) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("no answer before the time limit")
            if not wait_readable(fd, left):
                raise ChannelTimeout("no answer before the time limit")
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise ChannelError("the channel was closed")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def receive(fd: int, deadline=None):
    """The next value on `fd` (a blocking pipe end); ChannelTimeout past `deadline` (time.monotonic)."""
    size = int.from_bytes(_read_exact(fd, _HEADER, deadline), "big")
    if size > MAX_FRAME:
        raise ChannelError(f"a frame of {size} bytes is larger than the channel's {MAX_FRAME}")
    return decode(_read_exact(fd, size, deadline))
