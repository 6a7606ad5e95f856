"""Run untrusted generated Python (HumanEval/MBPP completions) against its tests.

Two boundaries, both needed:

1. **An OS boundary per process** (bwrap.py): bubblewrap gives each process its own user, PID,
   network, IPC, UTS, cgroup and mount namespaces, uid 65534, a read-only root holding only the
   Python installation, and a size-limited tmpfs as the only writable place. Nothing of the host is
   visible (no ``$HOME``, no dataset, no harness process, no network), nothing written survives the
   sample, and the whole PID namespace is killed when the sample ends, times out, or the harness
   dies (``--die-with-parent``). The candidate may make threads but no processes (a seccomp filter;
   ``Limits.allow_processes`` lifts it). rlimits cap address space, CPU time, file size, open files
   and processes; where the cgroup hierarchy allows (cgroup.py), a memory and a pids cgroup also
   count anonymous memory files and processes that rlimits miss (without a memory cgroup, memory
   files are bounded by open files x file size on top of the address-space limit).

2. **Candidate and tests in different processes** (runner.py): the solution runs in one sandbox
   and only answers calls; the benchmark's tests run in another sandbox and call it through a pipe
   that carries plain data only (child/wire.py: numbers, strings, bytes, lists, tuples, dicts, sets,
   None), decoded into built-in types. So a returned object cannot override ``==``, code in the
   candidate's process (frame walks, finalizers, signal handlers) cannot see or forge the verdict,
   and the verdict is written by the tester to a pipe the candidate never holds.

Without bubblewrap, `Sandbox` refuses (SandboxUnavailable: one line naming the Debian package
``bubblewrap`` and ``--allow-unisolated``) unless unisolated runs are allowed; then the same two
processes run directly on the host (own session, rlimits, killed as a group, temporary folder), and
every result carries ``isolation: "none"``.

Threat model: code written by a language model, buggy or hostile (including deliberate forgery,
exfiltration and damage attempts). Out of scope: kernel exploits that escape a user namespace, and
side channels (timing) between samples. The tests are the benchmark's; they are not secret, and
what a test does with the candidate's plain-data answers is the benchmark's affair.
"""

from .bwrap import ALLOW_UNISOLATED_ENV, BWRAP_ENV, SandboxUnavailable
from .runner import ExecutionResult, Isolation, Limits, Program, Sandbox, Status, TimeoutPolicy

__all__ = ["ALLOW_UNISOLATED_ENV", "BWRAP_ENV", "ExecutionResult", "Isolation", "Limits", "Program", "Sandbox",
           "SandboxUnavailable", "Status", "TimeoutPolicy"]
