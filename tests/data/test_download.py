"""`rnnkit data download`: sha256-checked, cached, never a bad or partial file left behind; safe_extract
refuses archive members that would land outside the target (zip slip). No network: a fake registry points
at a local file:// URL, or urlopen is replaced."""
import hashlib
import http.client
import io
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data import download as dl
from rnnkit.data.download import DATASETS, Dataset, cache_dir, download, safe_extract, sha256_of

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CONTENT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("RNNKIT_CACHE", str(path))
    return path


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source" / "input.txt"
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    return path


def registry(source, sha=None):
    return {"fake": Dataset(source.as_uri(), sha or hashlib.sha256(CONTENT).hexdigest(), "fake.txt", "a test file")}


def test_cache_dir_follows_the_environment(cache):
    assert cache_dir() == cache


def test_good_checksum_is_cached_and_not_fetched_again(cache, source):
    path = download("fake", datasets=registry(source))
    assert path == cache / "fake.txt"
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in cache.iterdir()) == ["fake.txt"]  # no temporary file left over
    source.unlink()  # a second fetch would now fail
    assert download("fake", datasets=registry(source)) == path
    assert path.read_bytes() == CONTENT


def test_cached_file_with_wrong_checksum_is_fetched_again(cache, source):
    cache.mkdir()
    (cache / "fake.txt").write_bytes(b"tampered")
    path = download("fake", datasets=registry(source))
    assert path.read_bytes() == CONTENT


def test_bad_checksum_is_an_error_and_leaves_nothing(cache, source):
    with pytest.raises(ValueError) as info:
        download("fake", datasets=registry(source, sha="0" * 64))
    message = str(info.value)
    assert "sha256" in message and hashlib.sha256(CONTENT).hexdigest() in message and "0" * 64 in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unreachable_url_is_an_os_error_and_leaves_nothing(cache, source):
    reg = registry(source)
    source.unlink()
    with pytest.raises(OSError, match="could not fetch"):
        download("fake", datasets=reg)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unknown_name_lists_the_known_ones(cache, source):
    with pytest.raises(ValueError, match="unknown data set 'nope'; known: fake"):
        download("nope", datasets=registry(source))
    assert not cache.exists()


def test_cli_downloads_and_prints_the_path(cache, source, monkeypatch):
    monkeypatch.setitem(DATASETS, "fake", registry(source)["fake"])
    result = CliRunner().invoke(app, ["data", "download", "fake"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(cache / "fake.txt")
    assert (cache / "fake.txt").read_bytes() == CONTENT


def test_cli_unknown_name_is_one_line_error(cache):
    result = CliRunner().invoke(app, ["data", "download", "nope"])
    assert result.exit_code == 1
    assert result.stderr.startswith("rnnkit: error: ") and "'nope'" in result.stderr and "shakespeare" in result.stderr
    assert "Traceback" not in result.output


def test_shakespeare_registry_checksum_matches_the_shared_file():
    path = SHARED / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    entry = dl.DATASETS["shakespeare"]
    assert entry.sha256 == sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry.url.startswith("https://") and entry.url.endswith("tinyshakespeare/input.txt")


# ----- an interrupted download leaves nothing ------------------------------------------------------------

class Interrupted:
    """A urlopen() response that delivers the first bytes, then fails like a dropped connection."""

    def __init__(self, error):
        self.error, self.sent = error, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, size=-1):
        if not self.sent:
            self.sent = True
            return CONTENT[:10]
        raise self.error


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"),
                                   http.client.IncompleteRead(CONTENT[10:20], 30)])
@pytest.mark.parametrize("cached", [None, b"an older file"])
def test_interrupted_download_leaves_no_partial_file(cache, source, monkeypatch, error, cached):
    if cached is not None:  # a cached file whose checksum does not match: fetched again, kept if that fails
        cache.mkdir()
        (cache / "fake.txt").write_bytes(cached)
    opened = []
    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: opened.append(url) or Interrupted(error))
    with pytest.raises(OSError, match=f"could not fetch {re.escape(source.as_uri())}: {type(error).__name__}"):
        download("fake", datasets=registry(source))
    assert opened == [source.as_uri()]
    files = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert files == ([] if cached is None else ["fake.txt"])  # no .part file, no partial fake.txt
    if cached is not None:
        assert (cache / "fake.txt").read_bytes() == cached


# ----- safe_extract: nothing outside the target folder ------------------------------------------------------

def make_zip(path, members):
    """members: (name, bytes) or (name, bytes, unix mode) written as given, no name clean-up."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data, *mode in members:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode[0] << 16
            z.writestr(info, data)
    return path


def make_tar(path, members):
    """members: (name, bytes) files, or (name, TarInfo type, linkname) links."""
    with tarfile.open(path, "w:gz") as t:
        for name, payload, *link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = payload, link[0]
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    return path


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def box(tmp_path):
    """tmp_path/box/ holds the archive; the target is box/out; outside/ must stay empty."""
    (tmp_path / "box").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "box"


def test_safe_extract_unpacks_zip_and_tar(box):
    members = [("data/a.txt", b"alpha\n"), ("data/sub/b.csv", b"x,y\n1,2\n"), ("top.txt", b"t")]
    for maker, name in ((make_zip, "a.zip"), (make_tar, "a.tar.gz")):
        archive = maker(box / name, members)
        out = box / f"out-{name}"
        files = safe_extract(archive, out, sha256=sha256_of(archive))
        assert files == sorted(out / m for m, _ in members)
        assert {str(p.relative_to(out)): p.read_bytes() for p in files} == dict(members)
        assert [p.name for p in box.iterdir() if p.name.endswith(".part")] == []


ESCAPES = {
    "dotdot": ("../evil.txt", "a '..' component"),
    "nested dotdot": ("data/../../evil.txt", "a '..' component"),
    "absolute": ("/tmp/rnnkit-abs-evil.txt", "an absolute path"),
    "backslash dotdot": ("..\\evil.txt", "a '..' component"),
    "drive": ("C:evil.txt", "a drive-letter path"),
}


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_safe_extract_refuses_escaping_names(box, kind, case):
    name, why = ESCAPES[case]
    members = [("fine.txt", b"ok"), (name, b"evil")]
    archive = (make_zip if kind == "zip" else make_tar)(box / f"bad.{kind}", members)
    with pytest.raises(ValueError) as info:
        safe_extract(archive, box / "out")
    message = str(info.value)
    assert repr(name) in message and why in message and str(archive) in message
    assert tree(box.parent) == ["box", f"box/bad.{kind}", "outside"]  # nothing written, not even fine.txt
    assert not Path("/tmp/rnnkit-abs-evil.txt").exists()


@pytest.mark.parametrize("kind", ["zip symlink", "tar symlink", "tar hard link", "tar fifo"])
def test_safe_extract_refuses_links_and_special_files(box, kind):
    outside = box.parent / "outside" / "target.txt"
    if kind == "zip symlink":
        archive = make_zip(box / "bad.zip", [("link", str(outside).encode(), stat.S_IFLNK | 0o777)])
        why = "a symbolic link"
    else:
        kind_type, why = {"tar symlink": (tarfile.SYMTYPE, "a symbolic link"),
                          "tar hard link": (tarfile.LNKTYPE, "a hard link"),
                          "tar fifo": (tarfile.FIFOTYPE, "not a regular file or folder")}[kind]
        archive = make_tar(box / "bad.tar.gz", [("link", kind_type, str(outside)), ("link", b"overwrite")])
    with pytest.raises(ValueError, match=re.escape("member 'link' is " + why)):
        safe_extract(archive, box / "out")
    assert tree(box.parent) == ["box", f"box/{archive.name}", "outside"]


def test_safe_extract_checks_the_sha256_before_opening(box):
    archive = make_zip(box / "a.zip", [("a.txt", b"alpha")])
    with pytest.raises(ValueError, match=f"has sha256 {sha256_of(archive)}, expected {'0' * 64}; not extracted"):
        safe_extract(archive, box / "out", sha256="0" * 64)
    assert tree(box) == ["a.zip"]


def test_safe_extract_refuses_a_used_target_and_corrupt_archives(box):
    archive = make_tar(box / "a.tar.gz", [("a.txt", b"alpha" * 1000)])
    (box / "used").mkdir()
    (box / "used" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(str(box / "used"))):
        safe_extract(archive, box / "used")
    assert tree(box / "used") == ["keep.txt"]
    (box / "empty").mkdir()
    assert safe_extract(archive, box / "empty") == [box / "empty" / "a.txt"]  # an empty folder is fine

    cut = box / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:-40])  # the gzip stream ends early
    with pytest.raises(ValueError, match=re.escape(str(cut))):
        safe_extract(cut, box / "out")
    (box / "plain.txt").write_text("not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        safe_extract(box / "plain.txt", box / "out")
    assert not (box / "out").exists() and not [p for p in box.iterdir() if p.name.endswith(".part")]
