"""``rnnkit data download NAME``: public data sets from their canonical URLs, sha256-checked, cached.

Files land in ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``; a cached file whose checksum matches is not
fetched again. The download goes to a temporary file and only a verified file is moved into place,
so a failed or tampered download never leaves a file that looks valid.

No registered data set is unpacked today (the Jena .zip is read in place by ``data/series_csv.py``,
pairs .zip files by ``data/pairs.py``, both into memory). Anything that must unpack an archive to disk
goes through :func:`safe_extract`, which verifies the sha256 first and refuses members that would land
outside the target folder (zip slip).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import lzma
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

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
            except (OSError, http.client.HTTPException) as e:  # IncompleteRead is not an OSError
                raise OSError(f"data download: could not fetch {ds.url}: {type(e).__name__}: {e}") from None
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


# ----- unpacking archives -------------------------------------------------------------------------------

def safe_extract(archive, target, *, sha256: str | None = None) -> list[Path]:
    """Unpack a .zip or tar archive (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) into the new folder ``target``.

    Nothing is written until every check passes:

    - ``sha256`` (when given) must match the archive's, checked before it is opened;
    - every member must stay inside ``target``: no absolute name (``/x``, ``C:x``, ``\\\\host``), no ``..``
      component, no empty name; only regular files and directories (a symlink, hard link, device or
      FIFO member is refused, in a zip too);
    - each refusal is a ValueError naming the archive and the member.

    The members are unpacked into a temporary folder beside ``target`` that is renamed to ``target``
    once complete, so a failure (a corrupt member, a full disk) leaves no ``target`` behind. ``target``
    must not exist yet (or be an empty folder). Returns the paths of the extracted files, sorted.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"safe_extract: {archive}: no such file")
    if sha256 is not None:
        got = sha256_of(archive)
        if got != sha256.lower():
            raise ValueError(f"safe_extract: {archive} has sha256 {got}, expected {sha256}; not extracted")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"safe_extract: {target} already exists and is not an empty folder; not extracted")
    if zipfile.is_zipfile(archive):
        unpack, names = _zip_members(archive)
    elif _is_tarfile(archive):
        unpack, names = _tar_members(archive)
    else:
        raise ValueError(f"safe_extract: {archive} is neither a zip nor a tar archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
    os.mkdir(tmp, 0o777)  # the umask applies, as for any folder (mkdtemp's would stay 0o700)
    try:
        try:
            unpack(tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise ValueError(f"safe_extract: {archive} is corrupt ({type(e).__name__}: {e}); not extracted") from None
        if target.exists():
            target.rmdir()  # the empty folder checked above
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(target / name for name in names)


def _is_tarfile(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except (EOFError, zlib.error, lzma.LZMAError, OSError) as e:  # a compressed stream cut short
        raise ValueError(f"safe_extract: {archive} is not a readable tar archive ({e})") from None


def _member_problem(name: str) -> str | None:
    """Why a member name could land outside the target folder, or None when it is safe."""
    if not name or name.strip("/\\") == "":
        return "an empty name"
    if "\x00" in name:
        return "a NUL byte in the name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path" if name[0] in "/\\" else "a drive-letter path"
    if ".." in name.replace("\\", "/").split("/"):
        return "a '..' component"
    return None


def _refuse(archive: Path, name: str, why: str) -> NoReturn:
    raise ValueError(f"safe_extract: {archive}: member {name!r} is {why}; refusing to extract "
                     "anything from it (it could write outside the target folder)")


def _zip_members(archive: Path):
    try:
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"safe_extract: {archive} is not a readable zip archive ({e})") from None
    files = []
    for info in infos:
        problem = _member_problem(info.filename)
        if problem:
            _refuse(archive, info.filename, problem)
        kind = stat.S_IFMT(info.external_attr >> 16)  # the unix file type, when a unix zip tool wrote one
        if kind == stat.S_IFLNK:
            _refuse(archive, info.filename, "a symbolic link")
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            _refuse(archive, info.filename, "not a regular file or folder")
        if not info.is_dir():
            files.append(info.filename.rstrip("/"))

    def unpack(folder: Path) -> None:
        with zipfile.ZipFile(archive) as z:
            for info in infos:
                z.extract(info, folder)  # names already checked; CRC errors raise BadZipFile

    return unpack, files


def _tar_members(archive: Path):
    try:
        with tarfile.open(archive) as t:
            members = t.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"safe_extract: {archive} is not a readable tar archive ({e})") from None
    for m in members:
        problem = _member_problem(m.name)
        if problem:
            _refuse(archive, m.name, problem)
        if m.issym():
            _refuse(archive, m.name, f"a symbolic link (to {m.linkname!r})")
        if m.islnk():
            _refuse(archive, m.name, f"a hard link (to {m.linkname!r})")
        if not (m.isfile() or m.isdir()):
            _refuse(archive, m.name, "not a regular file or folder (a device or FIFO)")
    files = [m.name.rstrip("/") for m in members if m.isfile()]

    def unpack(folder: Path) -> None:
        with tarfile.open(archive) as t:
            # the "data" filter (Python >= 3.10.12 / 3.11.4) repeats these checks and drops unsafe modes
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            t.extractall(folder, members=t.getmembers(), **kwargs)

    return unpack, files
