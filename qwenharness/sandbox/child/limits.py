"""Resource limits a sandboxed child sets on itself before any untrusted code or data is handled."""

import resource
import sys


def _set(which: int, value: int, slack: int = 0) -> None:
    soft, hard = resource.getrlimit(which)
    top = value + slack
    if hard != resource.RLIM_INFINITY:
        value, top = min(value, hard), min(top, hard)
    try:
        resource.setrlimit(which, (value, top))
    except (ValueError, OSError):
        pass


def apply(spec: dict) -> None:
    """spec: memory, cpu_s, file_size, open_files, processes (any may be missing)."""
    names = {"memory": resource.RLIMIT_AS, "cpu_s": resource.RLIMIT_CPU, "file_size": resource.RLIMIT_FSIZE,
             "open_files": resource.RLIMIT_NOFILE, "processes": resource.RLIMIT_NPROC}
    for key, which in names.items():
        if key in spec and spec[key] is not None:
            _set(which, int(spec[key]), 1 if key == "cpu_s" else 0)  # SIGXCPU first, SIGKILL a second later
    _set(resource.RLIMIT_CORE, 0)
    sys.set_int_max_str_digits(0)  # big integers cross the channel as text; the frame cap bounds them


def entry() -> None:
    """Does nothing: the harness's probe that a sandbox can start an interpreter here."""
