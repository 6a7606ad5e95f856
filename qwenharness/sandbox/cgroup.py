"""Memory and process-count cgroups for sandboxes, where the hierarchy lets this process make them.

A cgroup's memory limit counts what rlimits cannot: pages of anonymous memory files (memfd) and of
tmpfs files, which RLIMIT_AS ignores; its pids limit holds even where RLIMIT_NPROC does not (the
kernel exempts a root-owned process, and a sandbox started by root runs as root on the host's side).
Supported: cgroup v1 ``memory`` and ``pids`` hierarchies with a writable own cgroup (as in many
containers), and cgroup v2 where this process's cgroup is writable and delegates both controllers.
Elsewhere `Cgroups.detect` returns None and the rlimits alone apply.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """controller ("memory", "pids", or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for ctrl in parts[1].split(",") if parts[1] else [""]:
            out[ctrl] = parts[2]
    return out


def _writable_dir(p: Path) -> bool:
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def _remove_stale(parent: Path) -> None:
    """Remove the cgroups of harness processes that died without removing them (kill -9): they are
    named ``qh-<pid>-...``; rmdir refuses any that still holds a process."""
    try:
        names = [d.name for d in parent.iterdir() if d.name.startswith("qh-") and d.is_dir()]
    except OSError:
        return
    for name in names:
        pid = name.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(parent / name)
            except OSError:
                pass


@dataclass
class Cgroups:
    """Makes one child cgroup per sandbox under this process's own ones."""

    prefix: str
    parents: dict[str, Path]  # "memory" / "pids" -> parent folder (v1); "" -> parent folder (v2)
    _count: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def detect(cls, prefix: str) -> Cgroups | None:
        own = _own_cgroups()
        parents: dict[str, Path] = {}
        for ctrl in ("memory", "pids"):
            if ctrl in own:
                p = _ROOT / ctrl / own[ctrl].lstrip("/")
                if _writable_dir(p) and (p / "cgroup.procs").exists():
                    parents[ctrl] = p
        if len(parents) < 2 and "" in own:
            base = _ROOT / "unified" if (_ROOT / "unified" / "cgroup.controllers").exists() else _ROOT
            p = base / own[""].lstrip("/")
            try:
                delegated = set((p / "cgroup.subtree_control").read_text().split())
            except OSError:
                delegated = set()
            if _writable_dir(p) and {"memory", "pids"} <= delegated:
                parents = {"": p}
        if not parents:
            return None
        for parent in parents.values():
            _remove_stale(parent)
        made = cls(prefix, parents)
        try:
            made.remove(made.create(1 << 30, 16))  # a trial: the hierarchy may look writable yet refuse
        except OSError:
            return None
        return made

    def create(self, memory_bytes: int, pids: int) -> list[str]:
        with self._lock:
            name = f"{self.prefix}-{next(self._count)}"
        made: list[str] = []
        try:
            for ctrl, parent in self.parents.items():
                d = parent / name
                d.mkdir()
                made.append(str(d))
                if ctrl in ("memory", ""):
                    limit_file = "memory.max" if ctrl == "" else "memory.limit_in_bytes"
                    (d / limit_file).write_text(str(memory_bytes))
                    if ctrl == "" and (d / "memory.swap.max").exists():
                        (d / "memory.swap.max").write_text("0")
                if ctrl in ("pids", ""):
                    (d / "pids.max").write_text(str(pids))
        except OSError:
            self.remove(made)
            raise
        return made

    def remove(self, paths: list[str]) -> None:
        for p in paths:
            try:
                os.rmdir(p)
            except OSError:
                pass
