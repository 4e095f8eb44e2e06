"""The run directory's files: atomic writes, safetensors weights, the resumable trainer state, metrics.

A run directory holds everything needed to resume, evaluate and generate::

    run/
      config.json          model and training config            atomic_write_json / read_json
      vocab.json, ...      vocabularies, normalisation stats     atomic_write_json / read_json
      model.safetensors    the weights, tensors only             save_model / load_model
      trainer.pt           optimizer, scheduler, step, RNG       save_trainer_state / load_trainer_state
      metrics.jsonl        one JSON object per logged step       append_jsonl / read_jsonl / truncate_jsonl
      *.png                plots                                 atomic_write_bytes (or atomic_write)

Guarantees:

- **Every whole-file write is atomic.** The bytes go to a temporary file in the same directory, are
  flushed and fsynced, then ``os.replace`` renames it onto the target (and the directory is fsynced).
  A process killed at any moment leaves the target either as the old complete file or the new complete
  file, never a mixture. A failed write (an exception in the writer, a full disk, a read-only
  directory) removes its temporary file and leaves the old file untouched. Only SIGKILL / power loss
  can leave a temporary file behind; it is named ``.<target>.<8 hex>.tmp`` (hidden, never the target's
  name), ignored by every reader here, and removed by :func:`remove_stale_temp_files`.
- **Loading never unpickles arbitrary objects.** Weights are safetensors (no code at all);
  ``trainer.pt`` is read with ``torch.load(weights_only=True)``, which refuses any class or callable
  outside plain data, and a file that is not a ``torch.save`` zip archive (e.g. a raw pickle) is
  refused before anything is unpickled.
- **Every failure names the file** and says what is wrong: missing, corrupt or truncated, keys and
  shapes that do not match the model, a bad line in ``metrics.jsonl`` with its line number. These are
  :class:`CheckpointError` (a ``ValueError``).

Limits: safetensors has no checksum, so a bit flip inside the tensor data of a complete file goes
unnoticed (truncation and header damage are detected). ``append_jsonl`` is not atomic (it appends):
a kill mid-line leaves a partial last line, which readers skip with a warning and the next append
removes.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import pickle
import random
import re
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

log = logging.getLogger(__name__)

PathLike = str | os.PathLike

_TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_MAX_LISTED = 10  # keys listed in a mismatch message before "... and N more"


class CheckpointError(ValueError):
    """A run-directory file is missing, corrupt, truncated, unsafe, or does not match the model."""


# ----- atomic writes ------------------------------------------------------------------------------

def atomic_write(path: PathLike, write_fn: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` atomically: ``write_fn(f)`` writes to a binary temporary file in the same
    directory, which is fsynced and then renamed onto ``path``. On any exception the temporary file
    is removed, the old file is left untouched, and the exception propagates; an OSError (a full disk,
    an I/O error) comes back as the same kind of OSError with a message naming ``path``. Returns the path.

    A new file gets the usual permissions (0o666 minus the umask); an existing file keeps its mode.
    """
    path = Path(path)
    directory = path.parent
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # keep the old file's permissions
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None:  # a full disk, an I/O error: name the file
            raise _write_error(path, e) from e
        raise
    _fsync_directory(directory)
    return path


def _write_error(path: Path, e: OSError) -> OSError:
    """The same kind of OSError (same errno), with a message naming ``path``; a full disk says so."""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        reason = f"the disk is full ({reason}); any earlier {path.name} is unchanged"
    return OSError(e.errno, f"cannot write {path}: {reason}")


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden file ``.<name>.<8 hex>.tmp`` beside ``path``, opened for writing. The mode 0o666
    lets the kernel apply the umask (mkstemp's 0o600 would make every checkpoint private)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            if not path.parent.is_dir():
                reason = f"directory {path.parent} does not exist"
            else:
                reason = f"cannot create a temporary file in {path.parent}: {e.strerror}"
            raise OSError(e.errno, f"cannot write {path}: {reason}", str(path)) from e
    raise FileExistsError(f"cannot write {path}: no free temporary name in {path.parent}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (e.g. a PNG rendered into a BytesIO)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes: expected bytes for {path}, got {type(data).__name__}")
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, sorted keys, UTF-8, trailing newline) atomically. NaN and
    infinities are refused (strict JSON): the error names the file and where the value is."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except ValueError as e:
        where = _find_nonfinite(obj, "")
        raise ValueError(f"{path}: cannot write {where or 'a value'} as JSON: {e} "
                         "(strict JSON has no NaN or Infinity)") from e
    except TypeError as e:
        raise TypeError(f"{path}: cannot write as JSON: {e}") from e
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: PathLike) -> Any:
    """Read a JSON file; a missing or invalid file raises CheckpointError naming it (and the line and
    column of a syntax error)."""
    path = Path(path)
    _require_file(path, "JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is not UTF-8 text (byte offset {e.start}): corrupt?") from e


def _find_nonfinite(obj: Any, where: str) -> str | None:
    """The location (``['a'][0]``) of the first NaN or infinity in nested dicts / lists, if any."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{where or 'the value'} = {obj}"
    if isinstance(obj, dict):
        items: Iterable = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _find_nonfinite(v, f"{where}[{k!r}]")
        if found:
            return found
    return None


def remove_stale_temp_files(directory: PathLike) -> list[Path]:
    """Remove the ``.<name>.<8 hex>.tmp`` files a killed writer left in ``directory``; returns them.
    Call it only when no other process is writing to the directory (e.g. at the start of a resume)."""
    removed = []
    for p in Path(directory).iterdir():
        if _TMP_NAME.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        log.info("removed %d stale temporary file(s) from %s", len(removed), directory)
    return removed


# ----- model weights (safetensors) ----------------------------------------------------------------

def save_model(path: PathLike, model_or_state_dict: nn.Module | dict, metadata: dict[str, str] | None = None
               ) -> Path:
    """Save a module's (or a state dict's) tensors to a safetensors file, atomically.

    Tensors are detached, moved to the CPU and made contiguous. safetensors refuses tensors that share
    memory, so every tensor whose storage another entry already uses (tied weights, e.g. an embedding
    reused as the output projection) is cloned: the file then holds each name once with its own copy,
    and loading writes the same values into the tied parameter twice. ``metadata`` is a str -> str dict
    stored in the header (see :func:`read_model_metadata`).
    """
    if isinstance(model_or_state_dict, nn.Module):
        state = model_or_state_dict.state_dict()
    elif isinstance(model_or_state_dict, dict):
        state = model_or_state_dict
    else:
        raise TypeError(f"save_model: expected an nn.Module or a state dict for {path}, "
                        f"got {type(model_or_state_dict).__name__}")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"save_model: expected metadata to be a dict of str, got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"save_model: metadata must map str to str (safetensors header), "
                                f"got {k!r}: {type(v).__name__} {v!r}")
    tensors: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, t in state.items():
        if not isinstance(name, str):
            raise TypeError(f"save_model: state dict keys must be str, got {type(name).__name__} {name!r}")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"save_model: state dict entry {name!r} is a {type(t).__name__}, not a tensor; "
                            "safetensors holds tensors only (put other values in config.json or metadata)")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen_storages:
            t = t.clone()  # tied / aliased: safetensors stores each storage once
        elif t.numel():
            seen_storages.add(ptr)
        tensors[name] = t
    data = safetensors.torch.save(tensors, metadata=metadata)
    return atomic_write_bytes(path, data)


def load_model(path: PathLike, model: nn.Module, strict: bool = True) -> nn.Module:
    """Load a safetensors file into ``model`` (in place, onto the model's devices) and return it.

    Keys and shapes are compared before anything is copied: a mismatch raises CheckpointError naming
    the file, the shapes that differ, and the missing and unexpected keys. With ``strict=False``
    missing and unexpected keys are only logged; differing shapes still raise. A missing, truncated or
    corrupt file raises CheckpointError naming it.
    """
    path = Path(path)
    _require_file(path, "weights file")
    try:
        state = safetensors.torch.load_file(path, device="cpu")
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is corrupt or truncated (not a readable safetensors file: {e})") from e
    missing, unexpected = check_state_dict(path, state, model, strict=strict)
    if missing or unexpected:
        log.warning("%s: loaded non-strictly; missing %s, unexpected %s", path, missing, unexpected)
    model.load_state_dict(state, strict=strict)
    return model


def check_state_dict(path: PathLike, state: dict, model: nn.Module, strict: bool = True
                     ) -> tuple[list[str], list[str]]:
    """Compare a loaded state dict with ``model.state_dict()`` without copying anything.

    Raises CheckpointError naming ``path`` for any shape mismatch and, if ``strict``, for missing or
    unexpected keys. Returns ``(missing, unexpected)`` (both empty when strict).
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shapes = [f"{k!r} has shape {_shape(state[k])} in the file, {_shape(own[k])} in the model"
              for k in own if k in state and _shape(state[k]) != _shape(own[k])]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if shapes:
            parts.append(_listing(shapes, "; "))
        if strict and missing:
            parts.append(f"missing: [{_listing([repr(k) for k in missing], ', ')}]")
        if strict and unexpected:
            parts.append(f"unexpected: [{_listing([repr(k) for k in unexpected], ', ')}]")
        raise CheckpointError(f"{path} does not match the model ({type(model).__name__}): " + "; ".join(parts))
    return missing, unexpected


def _shape(t) -> tuple[int, ...] | str:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else f"a {type(t).__name__}"


def _listing(items: list[str], sep: str) -> str:
    shown = sep.join(items[:_MAX_LISTED])
    return shown + (f"{sep}... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def read_model_metadata(path: PathLike) -> dict[str, str]:
    """The str -> str metadata in a safetensors file's header ({} when there is none)."""
    path = Path(path)
    _require_file(path, "weights file")
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is corrupt or truncated (not a readable safetensors file: {e})") from e


# ----- trainer state (torch.save, loaded with weights_only=True) -----------------------------------

_PLAIN_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.Size, torch.dtype, torch.device)
_PLAIN_TENSORS = (torch.Tensor, nn.Parameter)


def save_trainer_state(path: PathLike, state: dict) -> Path:
    """``torch.save`` the resumable training state atomically.

    ``state`` may hold only plain data: tensors, numbers, strings, bytes, None, torch dtypes / devices
    / sizes, and dicts, lists, tuples and sets of them (what ``weights_only=True`` loads). Anything else
    (a NumPy scalar, a namedtuple, a dataclass) raises TypeError naming where it is, before writing.
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_trainer_state: expected a dict for {path}, got {type(state).__name__}")
    _check_plain(state, "state", path)
    # serialise in memory first: torch.save's zip writer turns a failed write (a full disk) into an
    # unreadable RuntimeError ("enforce fail at inline_container.cc"); a plain write reports ENOSPC
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def _check_plain(obj: Any, where: str, path: PathLike) -> None:
    kind = type(obj)
    if kind in (dict, OrderedDict):
        for k, v in obj.items():
            _check_plain(k, f"{where} key {k!r}", path)
            _check_plain(v, f"{where}[{k!r}]", path)
    elif kind in (list, tuple, set):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]", path)
    elif kind in _PLAIN_TENSORS or kind in _PLAIN_LEAVES:
        return
    else:
        hint = " (convert NumPy values with .item() or torch.from_numpy)" if kind.__module__ == "numpy" else ""
        raise TypeError(f"save_trainer_state: {where} is a {kind.__module__}.{kind.__qualname__}, not plain "
                        f"data; {path} would not load with weights_only=True{hint}")


def load_trainer_state(path: PathLike) -> dict:
    """Load ``trainer.pt`` onto the CPU with ``torch.load(weights_only=True)``.

    Raises CheckpointError naming the file when it is missing, truncated or corrupt, and when it holds
    objects that are not plain data (class instances, callables: refused by the weights-only
    unpickler, never executed). A file that is not a ``torch.save`` zip archive is refused unread.
    """
    path = Path(path)
    _require_file(path, "trainer state")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # torch.save's zip format; anything else would go to the legacy unpickler
        if not head:
            raise CheckpointError(f"{path} is empty (truncated)")
        if head[:1] == b"\x80":
            raise CheckpointError(f"{path} is a raw pickle, not a torch.save archive; refused unread, since a "
                                  "pickle can contain objects that are not plain data")
        raise CheckpointError(f"{path} is corrupt: not a torch.save archive (starts with {head!r})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _weights_only_reason(str(e))
        if "global" in reason.lower() or "reduce" in reason.lower() or "class" in reason.lower():
            raise CheckpointError(f"{path} contains objects that are not plain data; refused "
                                  f"(weights_only: {reason})") from None
        raise CheckpointError(f"{path} is corrupt or contains data that is not plain "
                              f"(weights_only: {reason})") from None
    except Exception as e:
        raise CheckpointError(f"{path} is corrupt or truncated ({type(e).__name__}: {_first_line(str(e))})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected the trainer state dict")
    return state


def _weights_only_reason(message: str) -> str:
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\.?\n|\.?$)", message, re.S)
    return match.group(1).strip() if match else _first_line(message)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "no details"


# ----- RNG states ---------------------------------------------------------------------------------

def rng_state() -> dict:
    """The global RNG states of Python's ``random``, NumPy's legacy ``np.random`` and torch (CPU, and
    every CUDA device when CUDA is available), as plain data that ``save_trainer_state`` accepts.
    Private ``np.random.Generator`` / ``torch.Generator`` objects are not included."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": (version, tuple(internal), gauss_next),
        "numpy": {"bit_generator": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured. CUDA states are restored when CUDA is available (a
    warning is logged when the device count differs or the saved run had no CUDA state)."""
    if not isinstance(state, dict):
        raise TypeError(f"set_rng_state: expected the dict from rng_state(), got {type(state).__name__}")
    missing = [k for k in ("python", "numpy", "torch") if k not in state]
    if missing:
        raise ValueError(f"set_rng_state: the RNG state lacks {missing} (has {sorted(state)})")
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
    n = state["numpy"]
    keys = n["keys"].numpy() if isinstance(n["keys"], torch.Tensor) else np.asarray(n["keys"])
    np.random.set_state((n["bit_generator"], keys.astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    if torch.cuda.is_available():
        saved = state.get("cuda")
        if saved is None:
            log.warning("set_rng_state: the saved state has no CUDA RNG state; CUDA RNGs left as they are")
        else:
            count = torch.cuda.device_count()
            if len(saved) != count:
                log.warning("set_rng_state: saved %d CUDA RNG states, %d devices now; restoring the first %d",
                            len(saved), count, min(len(saved), count))
            for device, s in enumerate(saved[:count]):
                torch.cuda.set_rng_state(s.to("cpu", torch.uint8), device)
    elif state.get("cuda"):
        log.warning("set_rng_state: CUDA RNG states were saved but CUDA is not available; ignored")


# ----- metrics.jsonl ------------------------------------------------------------------------------

def append_jsonl(path: PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line and flush it.

    Non-finite floats are written as ``NaN`` / ``Infinity`` (Python's JSON, which :func:`read_jsonl`
    reads back): an overflowing fp16 step or a skipped diverging step is a real observation. A partial
    last line left by a killed writer is removed first (or completed, if it is a whole record).
    """
    if not isinstance(record, dict):
        raise TypeError(f"append_jsonl: expected a dict record for {path}, got {type(record).__name__}")
    try:
        line = json.dumps(record, ensure_ascii=False)
    except TypeError as e:
        raise TypeError(f"{path}: cannot write the record as JSON: {e}") from e
    with open(path, "a+b") as f:
        _repair_last_line(f, Path(path))
        f.write((line + "\n").encode("utf-8"))
        f.flush()


def _repair_last_line(f: BinaryIO, path: Path) -> None:
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    # find the start of the unterminated last line (a rare path: read backwards in chunks)
    start, pos = 0, size
    while pos > 0:
        step = min(pos, 1 << 16)
        pos -= step
        f.seek(pos)
        cut = f.read(step).rfind(b"\n")
        if cut >= 0:
            start = pos + cut + 1
            break
    f.seek(start)
    tail = f.read()
    if _parse_record(tail) is not None:
        f.write(b"\n")  # a whole record that only lacks its newline
        return
    log.warning("%s: removing a truncated last line (%d bytes) left by an interrupted write", path, len(tail))
    f.truncate(start)


def _parse_record(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def read_jsonl(path: PathLike) -> list[dict]:
    """All records of a JSON-lines file.

    An unterminated, unparsable last line (a write killed midway) is skipped with a warning; any other
    line that is not a JSON object raises CheckpointError naming the file and the line number. Blank
    lines are skipped.
    """
    path = Path(path)
    _require_file(path, "JSON-lines file")
    data = path.read_bytes()
    lines = data.split(b"\n")
    records = []
    for number, raw in enumerate(lines, start=1):
        last_unterminated = number == len(lines)  # the text after the final newline (b"" if none)
        if not raw.strip():
            continue
        record = _parse_record(raw)
        if record is not None:
            records.append(record)
        elif last_unterminated:
            log.warning("%s: ignoring a truncated last line %d (%d bytes, no newline): an interrupted write?",
                        path, number, len(raw))
        else:
            raise CheckpointError(f"{path}, line {number}: not a JSON object: {_describe_bad_line(raw)}")
    return records


def _describe_bad_line(raw: bytes) -> str:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return f"not UTF-8 (byte {e.start})"
    except json.JSONDecodeError as e:
        return f"{e.msg} at column {e.colno}: {raw[:60].decode('utf-8', 'replace')!r}"
    return f"a JSON {type(value).__name__}"


def truncate_jsonl(path: PathLike, keep: Callable[[dict], bool]) -> int:
    """Rewrite a JSON-lines file atomically with only the records for which ``keep(record)`` is true
    (on resume: drop what was logged after the checkpoint). Returns how many records were dropped;
    a missing file is left missing (0)."""
    path = Path(path)
    if not path.exists():
        return 0
    records = read_jsonl(path)
    kept = [r for r in records if keep(r)]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    atomic_write_bytes(path, text.encode("utf-8"))
    dropped = len(records) - len(kept)
    if dropped:
        log.info("%s: dropped %d record(s) logged after the checkpoint", path, dropped)
    return dropped


# ----- the run directory --------------------------------------------------------------------------

def check_run_dir(path: PathLike, need: Iterable[str] = ("config.json", "model.safetensors")) -> Path:
    """Check that ``path`` is a run directory holding the files in ``need``; returns it as a Path.
    Raises CheckpointError naming the directory and the missing files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"run directory {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a run directory (pass the directory that holds "
                              "config.json and model.safetensors)")
    need = list(need)
    missing = [name for name in need if not (path / name).is_file()]
    if missing:
        present = sorted(p.name for p in path.iterdir() if not _TMP_NAME.match(p.name))
        raise CheckpointError(f"run directory {path} is incomplete: missing {', '.join(missing)} "
                              f"(it holds: {', '.join(present) or 'nothing'})")
    stale = [p.name for p in path.iterdir() if _TMP_NAME.match(p.name)]
    if stale:
        log.warning("%s holds %d temporary file(s) from an interrupted write (%s); "
                    "remove_stale_temp_files() deletes them", path, len(stale), ", ".join(sorted(stale)[:3]))
    return path


def run_task(run_dir: PathLike) -> str | None:
    """The task a run directory's config.json names, or None when there is no readable config."""
    path = Path(run_dir) / "config.json"
    try:
        return read_json(path).get("task") if path.is_file() else None
    except (ValueError, AttributeError):
        return None


def read_run_config(path: PathLike, tasks: Iterable[str], need: Iterable[str] = ("config.json", "model.safetensors"),
                    ) -> tuple[Path, dict]:
    """``check_run_dir``, then config.json, whose ``task`` must be one of ``tasks``: (run_dir, config).
    A readable config.json of another task is reported as such, before the files that task would need."""
    path, tasks = Path(path), list(tasks)

    def read_config() -> dict:
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise CheckpointError(f"{path / 'config.json'} holds a JSON {type(config).__name__}, expected an "
                                  "object with the run's task, data, model and train settings")
        if config.get("task") not in tasks:
            wanted = f"a {' or '.join(tasks)} run" if len(tasks) <= 2 else f"a run of {', '.join(tasks)}"
            raise CheckpointError(f"{path}: expected {wanted}, got task {config.get('task')!r}")
        return config

    # a readable config first: the wrong kind of run says so, instead of listing the files it lacks
    config = read_config() if path.is_dir() and (path / "config.json").is_file() else None
    run_dir = check_run_dir(path, need)
    return run_dir, config if config is not None else read_config()


def load_run_weights(run_dir: PathLike, model: nn.Module, *, best: bool = True) -> nn.Module:
    """A run's weights into ``model``: model.best.safetensors (the best on validation) when ``best`` and the
    file exists, else model.safetensors (the last step)."""
    weights = Path(run_dir) / "model.best.safetensors"
    return load_model(weights if best and weights.exists() else Path(run_dir) / "model.safetensors", model)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(f"{what} {path} not found")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a file")
