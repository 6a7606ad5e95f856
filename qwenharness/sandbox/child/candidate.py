"""The candidate process: runs the generated solution and answers calls, nothing else.

Started by the harness (``candidate.main()`` with argv ``SETUP_FD REQUEST_FD ANSWER_FD``) inside its
own sandbox. It reads one setup frame (the solution's source and the resource limits) from SETUP_FD,
applies the limits, executes the solution in a fresh namespace and sends the names of the callables
it defined (or the exception that stopped it). Then, for each request ``(name, args, kwargs)`` read
from REQUEST_FD, it calls that function and answers ``("r", value)`` or ``("e", type name,
message)``. Everything crosses the channel as plain data (wire.py), so nothing in this process
decides whether the tests pass: the test process, a separate sandboxed process, does.

Nothing here is trusted after the solution starts: the solution may rewrite this module's globals,
write junk to the pipes or exit; the test process treats any of that as a failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import limits  # noqa: E402
import wire  # noqa: E402

_MESSAGE_CAP = 2000


def _describe(exc: BaseException) -> tuple[str, str]:
    try:
        text = str(exc)
    except BaseException:
        text = "<unprintable>"
    name = type(exc).__name__
    return (name if type(name) is str else "Exception")[:100], text[:_MESSAGE_CAP]


def _type_name(x: object) -> str:
    name = type(x).__name__
    return name[:100] if type(name) is str else "object"


def _exported(ns: dict) -> tuple:
    """The names of the functions (and classes) the solution defines, and of the modules it
    imported at top level with their module names (MBPP's tests may use the solution's imports)."""
    names, modules = [], {}
    for k, v in list(ns.items()):
        if type(k) is not str or not k.isidentifier() or k.startswith("__"):
            continue
        if isinstance(v, type(os)):
            mod = getattr(v, "__name__", None)
            if type(mod) is str:
                modules[k] = mod
        elif callable(v):
            names.append(k)
    return sorted(names), modules


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the solution may have replaced or closed them
            pass


def main() -> None:
    setup_fd, request_fd, answer_fd = (int(a) for a in sys.argv[1:4])
    setup = wire.receive(setup_fd)
    os.close(setup_fd)
    limits.apply(setup["limits"])
    import builtins
    builtins.exit = builtins.quit = sys.exit  # -S leaves them undefined; keep the usual behaviour
    ns = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(compile(setup["solution"], "<solution>", "exec"), ns)
    except BaseException as e:  # SystemExit too: the solution never got to answer
        _flush()
        wire.send(answer_fd, ("e",) + _describe(e))
        os._exit(1)
    _flush()
    wire.send(answer_fd, ("ready",) + _exported(ns))
    receive, encode, write_all = wire.receive, wire.encode, wire.write_all
    while True:
        try:
            name, args, kwargs = receive(request_fd)
        except wire.ChannelError:
            os._exit(0)  # the test process is done
        try:
            if name not in ns:
                raise NameError(f"name {name!r} is not defined")
            fn = ns[name]
            value = fn(*args, **kwargs)
            try:
                frame = encode(("r", value))
            except wire.NotPlain:
                # e.g. a re.Match that the tests only test for truth: its type name and truth value
                frame = encode(("o", _type_name(value), bool(value)))
        except BaseException as e:  # noqa: BLE001 - every failure is an answer
            frame = encode(("e",) + _describe(e))
        _flush()  # the process is killed, not ended, when the tests are done: keep its output
        try:
            write_all(answer_fd, frame)
        except OSError:
            os._exit(0)


entry = main

if __name__ == "__main__":
    main()
