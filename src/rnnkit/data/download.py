"""``rnnkit data download NAME``: public data sets from their canonical URLs, sha256-checked, cached.

Files land in ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``; a cached file whose checksum matches is not
fetched again. The download goes to a temporary file and only a verified file is moved into place,
so a failed or tampered download never leaves a file that looks valid.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    url: str
    sha256: str | None  # None: no published checksum known; the first download's is recorded and enforced after
    filename: str
    about: str


DATASETS = {
    "shakespeare": Dataset(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "tinyshakespeare.txt",
        "Tiny Shakespeare (Karpathy's char-rnn), 1,115,394 characters",
    ),
    # Lecture 003's Jena climate archive (Keras); `rnnkit train forecast --data` reads the .zip directly.
    # Its sha256 is not published anywhere we could find and this project's machines cannot fetch it:
    # the first download's checksum is recorded beside it (TOFU) until someone fills it in here.
    "jena": Dataset(
        "https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip",
        None,
        "jena_climate_2009_2016.csv.zip",
        "Jena climate 2009-2016 (Max Planck Institute for Biogeochemistry), 14 features every 10 minutes",
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
    record = target.with_name(target.name + ".sha256")  # the first download's checksum when none is published
    expected = ds.sha256 or (record.read_text().strip() if record.exists() else None)
    if target.exists() and sha256_of(target) == expected:
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
        if expected is None:
            log.warning("data download: no published sha256 for %r; recorded this download's (%s) in %s and will "
                        "hold later downloads to it", name, got, record)
            record.write_text(got + "\n")
        elif got != expected:
            raise ValueError(f"data download: {ds.url} has sha256 {got}, expected {expected}; the file was not kept")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
