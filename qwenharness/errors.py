"""Errors that carry a fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: what went wrong and how to fix it."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} ({fix})" if fix else problem)


class UnknownNameError(HarnessError, KeyError):
    """An unknown model, preset, dataset or backend name."""

    def __str__(self) -> str:  # KeyError would add quotes
        return Exception.__str__(self)


class ConfigError(HarnessError, ValueError):
    """A configuration that cannot run (does not fit, too long a context, too many GPUs)."""


class DataError(HarnessError, ValueError):
    """Missing, malformed or truncated dataset files, or an unreachable Hub."""


class EngineError(HarnessError, RuntimeError):
    """An inference engine failed to start or to run (missing package, out of memory)."""


class EngineDiedError(EngineError):
    """The engine itself is gone (vLLM's EngineCore died, say): no request is at fault, so nothing is
    recorded as a sample error; the evaluation stops, its samples stay to be done, and the next one
    starts a new engine."""


class StorageError(HarnessError, OSError):
    """A result file or folder that cannot be written: read-only file system, no space, no permission."""

    def __str__(self) -> str:  # OSError would print "[Errno N] ..." instead of problem and fix
        return BaseException.__str__(self)


_STORAGE_ERRNOS = {
    "EROFS": ("the file system holding {path} is read-only",
              "choose a writable --output-dir / --results-dir, or remount it read-write"),
    "ENOSPC": ("no space left on the device holding {path}",
               "free space there (df -h) or choose another --output-dir; a rerun with the same run id "
               "reuses every finished sample"),
    "EDQUOT": ("disk quota exceeded writing {path}",
               "free space within your quota or choose another --output-dir; a rerun with the same run id "
               "reuses every finished sample"),
    "EACCES": ("permission denied writing {path}",
               "fix the folder's permissions (ls -ld) or choose another --output-dir / --results-dir"),
    "EPERM": ("operation not permitted writing {path}",
              "fix the folder's permissions (ls -ld) or choose another --output-dir / --results-dir"),
    "ENOTDIR": ("cannot write {path}: a folder on its path is a file",
                "choose another --output-dir / --results-dir, or move that file away"),
}


def storage_error(error: OSError, path: object = None) -> StorageError | None:
    """The StorageError of a disk-side OSError (read-only, full, no permission), or None for others."""
    import errno

    name = errno.errorcode.get(error.errno or -1)
    if name not in _STORAGE_ERRNOS:
        return None
    problem, fix = _STORAGE_ERRNOS[name]
    where = path if path is not None else (error.filename or "a result file")
    out = StorageError(problem.format(path=where), fix)
    out.errno, out.strerror, out.filename = error.errno, error.strerror, str(where)
    return out
