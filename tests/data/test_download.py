"""`rnnkit data download`: sha256-checked, cached, never a bad file left behind. No network: a fake
registry points at a local file:// URL."""
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data import download as dl
from rnnkit.data.download import DATASETS, Dataset, cache_dir, download, sha256_of

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
