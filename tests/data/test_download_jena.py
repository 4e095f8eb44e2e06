"""`rnnkit data download jena`: the Keras archive's entry, and the download of a data set with no published
checksum (the first download's sha256 is recorded and enforced). No network: file:// URLs to local files."""
import hashlib
import zipfile

import pytest

from rnnkit.data.download import DATASETS, Dataset, download
from rnnkit.data.series_csv import load_series

JENA_HEAD = ('"Date Time","p (mbar)","T (degC)","Tpot (K)"\n01.01.2009 00:10:00,996.52,-8.02,265.40\n'
             "01.01.2009 00:20:00,996.57,-8.41,265.01\n01.01.2009 00:30:00,996.53,-8.51,264.91\n")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "source" / "jena_climate_2009_2016.csv.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("jena_climate_2009_2016.csv", JENA_HEAD)
    return path


def registry(archive):
    return {"jena": Dataset(archive.as_uri(), None, "jena_climate_2009_2016.csv.zip", "test archive")}


def test_jena_entry_points_at_the_keras_archive():
    entry = DATASETS["jena"]
    assert entry.url == "https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip"
    assert entry.filename.endswith(".csv.zip")


def test_first_download_records_its_checksum_and_later_ones_are_held_to_it(cache, archive):
    path = download("jena", datasets=registry(archive))
    record = cache / "jena_climate_2009_2016.csv.zip.sha256"
    assert record.read_text().strip() == hashlib.sha256(archive.read_bytes()).hexdigest()
    series = load_series(path, target="T (degC)", time=["Date Time"])  # the archive is read as it is
    assert series.values[:, 1].tolist() == [-8.02, -8.41, -8.51]
    archive.rename(archive.with_suffix(".gone"))  # cached and verified: not fetched again
    assert download("jena", datasets=registry(archive)) == path
    archive.with_suffix(".gone").rename(archive)
    path.write_bytes(b"damaged")  # a damaged cache is fetched again and checked against the record
    assert download("jena", datasets=registry(archive)).read_bytes() == archive.read_bytes()
    with zipfile.ZipFile(archive, "w") as z:  # the source changed: refused, not kept
        z.writestr("jena_climate_2009_2016.csv", JENA_HEAD + "01.01.2009 00:40:00,1,2,3\n")
    path.unlink()
    with pytest.raises(ValueError, match="has sha256 .*, expected .*; the file was not kept"):
        download("jena", datasets=registry(archive))
    assert not path.exists()
