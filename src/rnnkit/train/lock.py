"""One training at a time per run directory: ``RUN_DIR/.lock`` holds the writer's pid and host.

Two trainings pointed at the same ``--out`` would interleave their checkpoints and metrics. The first
one creates ``.lock`` with ``os.open(O_CREAT | O_EXCL)`` (atomic: exactly one creator wins) and writes
``{"pid", "host", "token", "started"}`` into it; the second finds the file and refuses, naming the
directory and the pid (and host) holding it::

    with run_lock(run_dir):       # LockError if another live process holds it
        ...                       # write the run directory
    # .lock removed, also after an exception or Ctrl-C

A lock left by a process that died without cleaning up (SIGKILL, power loss) is **stale**: its host is
this machine and its pid is no longer alive. A stale lock is taken over with a warning. A lock from
another host cannot be checked from here and is never taken over: the error says which host holds it
and that deleting the file is safe once that process is gone.

Limits: a pid reused by an unrelated process keeps a stale lock looking alive (the safe direction: the
error names the file to delete). Two processes taking over the *same* stale lock at the same instant
could both succeed (the take-over is unlink + create, not one atomic step). Containers that share a
run directory and a host name but not a pid namespace see each other's locks as stale.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import time
from pathlib import Path

from .checkpoint import CheckpointError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_UNREADABLE_GRACE_S = 10.0  # an empty / garbled lock this young may be a creator between open and write


class LockError(CheckpointError):
    """The run directory is locked by another live training (the message names the directory and pid).
    A :class:`CheckpointError` (a ``ValueError``), so the CLI reports it on one line."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (signal 0 probes without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError as e:
        return e.errno != errno.ESRCH
    return True


class RunLock:
    """The lock on one run directory: :meth:`acquire` creates ``run_dir/.lock``, :meth:`release`
    removes it (only if it is still this lock's file). Prefer :func:`run_lock`; this class is for code
    whose lock outlives one ``with`` block (the Trainer holds it from construction to the end of fit).
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.token: str | None = None  # set while held

    @property
    def held(self) -> bool:
        return self.token is not None

    def acquire(self) -> "RunLock":
        """Create the lock file or raise :class:`LockError`; a stale lock is taken over (logged).
        The directory must exist (FileNotFoundError naming it otherwise)."""
        if self.held:
            return self
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run_lock: run directory {self.run_dir} does not exist")
        for _ in range(3):  # create; on a stale lock, remove it and create again
            token = secrets.token_hex(8)
            if self._create(token):
                self.token = token
                return self
            holder = self._read()
            reason = self._stale_reason(holder)
            if reason is None:
                raise LockError(self._refusal(holder))
            log.warning("run directory %s: taking over a stale lock (%s)", self.run_dir, reason)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        raise LockError(f"{self.run_dir} is locked ({self.path} keeps reappearing: another training is starting "
                        "there)")

    def release(self) -> None:
        """Remove the lock file if this lock holds it (a no-op otherwise, and on a second call)."""
        if not self.held:
            return
        token, self.token = self.token, None
        holder = self._read()
        if holder.get("token") != token:  # taken over meanwhile (e.g. we were judged stale): not ours
            log.warning("run directory %s: the lock is no longer this process's; left in place", self.run_dir)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ----- helpers ---------------------------------------------------------------------------------

    def _create(self, token: str) -> bool:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileExistsError:
            return False
        record = {"pid": os.getpid(), "host": socket.gethostname(), "token": token,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        return True

    def _read(self) -> dict:
        """The holder's record; {} when the file is gone, empty or not a JSON object."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError, IsADirectoryError):
            return {}
        return value if isinstance(value, dict) else {}

    def _stale_reason(self, holder: dict) -> str | None:
        """Why the existing lock may be taken over, or None when it must be respected."""
        if not self.path.exists():
            return "it was just removed"
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int) or not isinstance(host, str):
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "it was just removed"
            if age > _UNREADABLE_GRACE_S:
                return f"{self.path} is unreadable and {age:.0f} s old: a writer died while creating it"
            return None
        if host != socket.gethostname():
            return None  # another machine's process: cannot be checked from here
        if not pid_alive(pid):
            return f"pid {pid} on {host} is not running"
        return None

    def _refusal(self, holder: dict) -> str:
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int):
            return (f"{self.run_dir} is locked by another training that is starting ({self.path} is being "
                    "written); wait for it, or choose another --out")
        where = "this machine" if host == socket.gethostname() else f"host {host!r}"
        since = f", since {holder['started']}" if isinstance(holder.get("started"), str) else ""
        return (f"{self.run_dir} is in use by another training: pid {pid} on {where}{since} holds {self.path}; "
                "wait for it to finish or choose another --out (if that process is gone, delete the lock file)")


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold ``run_dir/.lock`` for the ``with`` block: raises :class:`LockError` (naming the directory
    and the pid holding it) when another live process holds it, takes over a stale one with a logged
    warning, and removes the file on exit, whether the block returns or raises (Ctrl-C included)."""
    lock = RunLock(run_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()
