"""C kernels compiled on the user's machine at first use, loaded with ctypes; torch's ops where they cannot be.

A step made of torch ops pays a few µs of dispatch for each of its small ops, and torch's own ways to fuse
them compile for longer than issue 9's 5 s (``torch.compile`` of an unrolled LSTM: ≈ 80 s as the issue
measured it; a ``cpp_extension`` builds against torch's C++ headers). The kernels here are plain C (no torch headers) in
``csrc/``: the system's C compiler builds one in about 0.3 s, for this CPU (``-march=native``) and with OpenMP
where the compiler has it; in a process that has loaded torch, the library's ``libgomp`` is torch's own
(the same soname, loaded once), so both share one thread pool.

The library goes into ``$RNNKIT_CACHE`` (default ``~/.cache/rnnkit``) under a name made from the source,
the compiler, its flags and the CPU's feature flags, so a home directory shared by different machines gets
one build per kind of CPU; it is written to a temporary name and renamed, so a concurrent process never
loads half a file. ``RNNKIT_NATIVE=0`` turns the native kernels off; with no compiler, or a failed build,
callers run torch's ops and :func:`unavailable` says why.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCES = Path(__file__).with_name("csrc")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros",
         "-fPIC", "-shared")


def cache_dir() -> Path:
    if os.environ.get("RNNKIT_CACHE"):
        return Path(os.environ["RNNKIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnkit"


def enabled() -> bool:
    """False when ``RNNKIT_NATIVE`` is 0, off, false or no."""
    return os.environ.get("RNNKIT_NATIVE", "1").strip().lower() not in ("0", "off", "false", "no")


def _compiler() -> str | None:
    return os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _build(name: str, extra_flags: tuple[str, ...] = ()) -> tuple[ctypes.CDLL | None, str | None]:
    """Compile (or find in the cache) and load ``csrc/<name>.c``; ``extra_flags`` go after FLAGS (the tests
    build the portable paths with ``-mno-avx512vnni -mno-avx512bf16``)."""
    cc = _compiler()
    if cc is None:
        return None, "no C compiler (cc, gcc or clang) on the PATH; set CC to use one elsewhere"
    source = SOURCES / f"{name}.c"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"the C compiler {cc!r} does not run: {e}"
    errors = []
    for openmp in (["-fopenmp"], []):  # without OpenMP (e.g. Apple's clang) the kernels run on one thread
        flags = [*FLAGS, *openmp, *extra_flags]
        key = hashlib.sha256("\0".join([source.read_text(), cc, version, *flags, _cpu_flags()]).encode())
        target = cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
        if not target.exists():
            try:
                _compile(cc, flags, source, target)
            except (OSError, subprocess.SubprocessError) as e:
                errors.append(f"{cc} {' '.join(flags)}: {e}")
                continue
        try:
            return ctypes.CDLL(str(target)), None
        except OSError as e:
            errors.append(f"loading {target}: {e}")
    return None, "the C kernels did not build: " + " | ".join(errors)


def _compile(cc: str, flags: list[str], source: Path, target: Path) -> None:
    """cc flags source -o target, through a temporary file renamed into place (never half a library)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([cc, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise OSError(done.stderr.strip()[-500:])
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def _library(name: str) -> tuple[ctypes.CDLL | None, str | None]:
    return _build(name)


def library(name: str) -> ctypes.CDLL | None:
    """The compiled ``csrc/<name>.c``, built once per process (and once per machine, cached), or None."""
    return _library(name)[0] if enabled() else None


def unavailable(name: str) -> str | None:
    """Why ``library(name)`` is None, or None when it loaded."""
    return _library(name)[1] if enabled() else "turned off by RNNKIT_NATIVE"
