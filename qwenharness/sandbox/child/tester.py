"""The test process: runs the benchmark's own test code and decides the verdict.

Started by the harness in a sandbox of its own, apart from the candidate's, either for one sample
(``main``) or as a server that runs the samples of one harness worker one after the other, each in
a fresh fork (``serve``). The setup frame holds the trusted prelude (HumanEval's
prompt, with helpers such as ``poly`` that property checks use; MBPP's test imports), the test code,
the entry point, the time limit and the resource limits.

The tests see the candidate's functions under their names, except names the prelude defines and
names of builtins (a candidate's own ``abs`` or ``all`` would otherwise judge the tests), and the
modules the solution imported at top level, imported afresh here and only under their own names.

The candidate's functions exist here only as `Remote` proxies: calling one sends ``(name, args,
kwargs)`` over REQUEST_FD and waits, until the sample's deadline at most, for the answer on ANSWER_FD.
Answers are decoded by wire.py into built-in types only, so the test's ``==``, ``<`` and ``in`` are
the built-in ones whatever the candidate returns. Names the prelude defines keep the prelude's
(trusted) definition, except the entry point, which is always the candidate's.

The verdict frame ``{"status", "message"}`` goes to VERDICT_FD, which only this process holds.
"""

import builtins
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import limits  # noqa: E402
import wire  # noqa: E402

_MESSAGE_CAP = 2000


class CandidateGone(BaseException):
    """The candidate process closed the channel or sent something that is not an answer (a
    BaseException, so that a test's own ``except Exception`` cannot swallow it)."""


class CandidateTimeout(BaseException):
    """The candidate did not answer before the sample's deadline."""


class CandidateError(Exception):
    """An exception raised in the candidate whose type is not a built-in exception."""


class TestCannotSend(Exception):
    """The test passed the candidate a value the channel cannot carry (a function, an object)."""


def _exception(name: str, message: str) -> BaseException:
    cls = getattr(builtins, name, None) if name.isidentifier() else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError wants five arguments
            pass
    return CandidateError(f"{name}: {message}")


class Channel:
    def __init__(self, request_fd: int, answer_fd: int, deadline: float):
        self.request_fd, self.answer_fd, self.deadline = request_fd, answer_fd, deadline

    def receive(self):
        try:
            return wire.receive(self.answer_fd, self.deadline)
        except wire.ChannelTimeout:
            raise CandidateTimeout("the candidate did not answer before the time limit") from None
        except wire.ChannelError as e:
            raise CandidateGone(f"the candidate process {e}") from None

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            frame = wire.encode((name, args, kwargs))
        except wire.NotPlain as e:
            raise TestCannotSend(f"cannot pass this argument to the candidate's process: {e}") from None
        try:
            wire.write_all(self.request_fd, frame)
        except OSError:
            raise CandidateGone("the candidate process closed the channel") from None
        answer = self.receive()
        if type(answer) is tuple and len(answer) == 2 and answer[0] == "r":
            return answer[1]
        if (type(answer) is tuple and len(answer) == 3 and answer[0] == "o" and type(answer[1]) is str
                and type(answer[2]) is bool):
            return Opaque(answer[1][:100], answer[2])
        if (type(answer) is tuple and len(answer) == 3 and answer[0] == "e" and type(answer[1]) is str
                and type(answer[2]) is str):
            raise _exception(answer[1][:100], answer[2][:_MESSAGE_CAP])
        raise CandidateGone("the candidate process sent something that is not an answer")


class Opaque:
    """What the tests get for a result that is not plain data (a re.Match, a generator, an object):
    its type name and truth value, nothing else. It equals only itself and supports no operation,
    so ``assert f(x)`` / ``assert not f(x)`` work as with the real object, and ``f(x) == y`` fails."""

    __slots__ = ("_type", "_truth")

    def __init__(self, type_name: str, truth: bool):
        self._type, self._truth = type_name, truth

    def __bool__(self) -> bool:
        return self._truth

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self._type} object in the candidate's process>"


class Remote:
    """A function of the candidate, called through the channel."""

    def __init__(self, channel: Channel, name: str):
        self._channel, self.__name__ = channel, name
        self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self._channel.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self.__name__}>"


def _verdict(exc: BaseException | None) -> dict:
    if exc is None:
        return {"status": "passed", "message": ""}
    if isinstance(exc, CandidateTimeout):
        return {"status": "timeout", "message": "wall-clock time limit exceeded"}
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001
        text = "<unprintable>"
    line = (type(exc).__name__ + (": " + text if text else ""))[:_MESSAGE_CAP]
    if isinstance(exc, CandidateGone):
        return {"status": "error", "message": text[:_MESSAGE_CAP]}
    return {"status": "failed" if isinstance(exc, AssertionError) else "error", "message": line}


def run(setup: dict, request_fd: int, answer_fd: int) -> dict:
    channel = Channel(request_fd, answer_fd, time.monotonic() + float(setup["timeout_s"]))
    try:
        ready = channel.receive()
    except (CandidateGone, CandidateTimeout) as e:
        return _verdict(e)
    if type(ready) is tuple and len(ready) == 3 and ready[0] == "e" and all(type(x) is str for x in ready[1:]):
        return {"status": "error", "message": (ready[1][:100] + (": " + ready[2] if ready[2] else ""))[:_MESSAGE_CAP]}
    if not (type(ready) is tuple and len(ready) == 3 and ready[0] == "ready" and type(ready[1]) is list
            and all(type(n) is str for n in ready[1]) and type(ready[2]) is dict
            and all(type(k) is str and type(v) is str for k, v in ready[2].items())):
        return _verdict(CandidateGone("the candidate process sent something that is not an answer"))
    ns = {"__name__": "__test__", "__builtins__": builtins}
    exec(compile(setup.get("prelude") or "", "<prelude>", "exec"), ns)
    shadows = set(dir(builtins))  # a candidate's `abs` or `all` must not replace the tests' own
    for alias, module in ready[2].items():  # the solution's top-level imports, imported here afresh
        # only under their own name (`import math`, `import os.path`): no `math` that is really `cmath`
        parts = module.split(".")
        if (alias.isidentifier() and alias not in ns and alias not in shadows and alias in (parts[0], parts[-1])
                and all(p.isidentifier() for p in parts)):
            try:
                __import__(module)
                ns[alias] = sys.modules[module if alias == parts[-1] else parts[0]]
            except Exception:  # noqa: BLE001 - not importable here (absent, or only in its folder)
                pass
    entry = setup.get("entry_point")
    names = {n for n in ready[1] if n.isidentifier() and not n.startswith("__") and n not in shadows}
    if entry:
        names.add(entry)
    for name in names:
        if name == entry or name not in ns:
            ns[name] = Remote(channel, name)
    try:
        exec(compile(setup["test"], "<test>", "exec"), ns)
    except BaseException as e:  # noqa: BLE001 - the verdict covers every way the tests can end
        return _verdict(e)
    return _verdict(None)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


def _run_and_report(setup: dict, request_fd: int, answer_fd: int, verdict_fd: int) -> None:
    try:
        verdict = run(setup, request_fd, answer_fd)
    except BaseException as e:  # noqa: BLE001 - a broken prelude or test is an error, said as such
        verdict = {"status": "error", "message": f"the test harness failed: {type(e).__name__}: {e}"[:_MESSAGE_CAP]}
    _flush()
    wire.send(verdict_fd, verdict)


def main() -> None:
    """One sample: ``tester.py SETUP_FD REQUEST_FD ANSWER_FD VERDICT_FD``."""
    setup_fd, request_fd, answer_fd, verdict_fd = (int(a) for a in sys.argv[1:5])
    setup = wire.receive(setup_fd)
    os.close(setup_fd)
    limits.apply(setup["limits"])
    _run_and_report(setup, request_fd, answer_fd, verdict_fd)
    os._exit(0)


def serve() -> None:
    """Many samples, one at a time: ``tester.py serve CONTROL_FD``. Each job on the control socket is
    one byte carrying three descriptors (request, answer, verdict) and then the setup frame; each
    runs in a fresh fork of this process, so no test sees another's state. The harness kills the
    whole sandbox when a sample overruns its time."""
    import socket

    control = socket.socket(fileno=int(sys.argv[2]))
    while True:
        try:
            marker, fds, _, _ = socket.recv_fds(control, 1, 3)
        except OSError:
            os._exit(0)
        if marker != b"J" or len(fds) != 3:
            os._exit(0)
        try:
            setup = wire.receive(control.fileno())
        except wire.ChannelError:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                limits.apply(setup["limits"])
                _run_and_report(setup, fds[0], fds[1], fds[2])
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        os.waitpid(pid, 0)


def entry() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve()
    else:
        main()


if __name__ == "__main__":
    entry()
