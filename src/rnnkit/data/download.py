"""``rnnkit data download NAME``: public data sets from their canonical URLs, sha256-checked, cached.

Files land in ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``; a cached file whose checksum matches is not
fetched again. The download goes to a temporary file and only a verified file is moved into place,
so a failed or tampered download never leaves a file that looks valid.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dataset:
    url: str
    sha256: str
    filename: str
    about: str


DATASETS = {
    "shakespeare": Dataset(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "tinyshakespeare.txt",
        "Tiny Shakespeare (Karpathy's char-rnn), 1,115,394 characters",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit")


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, *, datasets: dict[str, Dataset] = DATASETS, timeout: float = 60) -> Path:
    """The path of the verified, cached file for data set `name` (downloaded if needed)."""
    if name not in datasets:
        raise ValueError(f"data download: unknown data set {name!r}; known: {', '.join(sorted(datasets))}")
    ds = datasets[name]
    target = cache_dir() / ds.filename
    if target.exists() and sha256_of(target) == ds.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{ds.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(ds.url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
            except OSError as e:
                raise OSError(f"data download: could not fetch {ds.url}: {e}") from None
        got = sha256_of(tmp)
        if got != ds.sha256:
            raise ValueError(f"data download: {ds.url} has sha256 {got}, expected {ds.sha256}; the file was not kept")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
