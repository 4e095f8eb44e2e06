"""Fuzzing the data readers: arbitrary bytes, and small valid files with bytes flipped, inserted, deleted,
duplicated or cut, raw and inside .gz / .zip containers (mutating the container bytes too), never make a
reader fail with anything but the documented errors: ``ValueError`` or ``TypeError`` (rnnkit's own
subclasses included) whose message names the file. A raw decoder error (``UnicodeDecodeError``, though
a ``ValueError``), an ``IndexError``, ``KeyError``, ``EOFError``, ``zlib.error``, ``BadZipFile``,
``OSError`` from gzip, ``struct.error``, ``OverflowError``, ... is a bug.

Mutating a valid sample reaches deep into a parser (a valid header, then a bad row); random bytes
mostly test the first check. Examples are few per reader (the suite is fast); hypothesis keeps the
failing ones in its database and replays them first.
"""
from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data import babi, embeddings, idx, pairs, sentiment, series_csv, text
from rnnkit.data.vocab import Vocab
from rnnkit.tasks import lm

# ----- small valid samples ----------------------------------------------------------------------------

TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
SPACED = b"a _ c a t \n t h e _ d o g \n "
CSV = (b"date,temp,rain,wind\n2021-01-01 00:00,1.5,0,NE\n2021-01-01 01:00,1.7,0.2,NW\n"
       b"2021-01-01 02:00,NA,0.1,NE\n2021-01-01 03:00,2.5,0,SE\n2021-01-01 04:00,2.0,1.5,NW\n")
CSV_PARTS = (b"No,year,month,day,hour,pm2.5,cbwd\n1,2010,1,1,0,NA,NW\n2,2010,1,1,1,129,SE\n"
             b"3,2010,1,1,2,148,SE\n4,2010,2,28,23,159,cv\n5,2012,2,29,0,181,NW\n")
CSV_JENA = (b'"Date Time","p (mbar)","T (degC)"\n01.01.2009 00:10:00,996.52,-8.02\n'
            b"01.01.2009 00:20:00,996.57,-8.41\n01.01.2009 00:30:00,996.53,-8.51\n")
BABI = (b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n"
        b"4 Daniel went back to the hallway.\n5 Where is Daniel? \thallway\t4\n1 Sandra went to the garden.\n"
        b"2 Where is Sandra? \tgarden\t1\n")
PAIRS = "Go.\tVa !\nHi.\tSalut !\nRun!\tCours\u202f!\nWho?\tQui ?\n".encode()
TSV = b"a fine film\t1\nnot fine at all\t0\ndull , dull , dull\t0\n"
SST = b"(3 (2 It) (4 (2 's) (4 great)))\n(1 (1 (2 A) (1 dull)) (2 -LRB-film-RRB-))\n(2 (2 Ok) (2 .))\n"
VECTORS = b"3 3\nthe 0.1 -0.2 0.3\ncat 0.4 0.5 6e-1\n, 1 2 3\n"
RT = "simplistic , silly and tedious . \nit's so laddish and juvenile , only teenage boys could possibly " \
     "find it funny . \nthe caf\xe9 scene is \u201c fun \u201d . \n".encode("cp1252")


def idx_bytes(array) -> bytes:
    code = {np.dtype("uint8"): 0x08, np.dtype("float32"): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


IMAGES = idx_bytes(np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2))
LABELS = idx_bytes(np.array([7, 0, 9], dtype=np.uint8))
FLOATS = idx_bytes(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))


# ----- readers: (file name, sample, read(path)) --------------------------------------------------------

def read_mnist_images(path):
    (path.parent / "train-labels-idx1-ubyte").write_bytes(LABELS)
    return idx.read_mnist(path.parent, "train", image_size=(2, 2))


def read_mnist_labels(path):
    (path.parent / "train-images-idx3-ubyte").write_bytes(IMAGES)
    return idx.read_mnist(path.parent, "train", image_size=(2, 2))


def read_rt(path):
    other = "rt-polarity.pos" if path.name.endswith(".neg") else "rt-polarity.neg"
    (path.parent / other).write_bytes(RT)
    return sentiment.read_rt(path.parent)


VOCAB = Vocab.words(["the", "cat", ",", "sat"])

READERS = {
    "text": ("corpus.txt", TEXT, text.read_text),
    "text-replace": ("corpus.txt", TEXT, lambda p: text.read_text(p, errors="replace")),
    "charlm-spaced": ("chars.txt", SPACED, lambda p: lm.read_corpus(p, spaced=True)),
    "csv": ("series.csv", CSV, lambda p: series_csv.load_series(
        p, target="temp", time=["date"], categorical=["wind"], fill="interpolate", calendar=["hour", "doy"])),
    "csv-parts": ("pollution.csv", CSV_PARTS, lambda p: series_csv.load_series(
        p, target="pm2.5", features=["pm2.5", "cbwd"], time=["year", "month", "day", "hour"],
        categorical=["cbwd"], fill="ffill", calendar=["dow"])),
    "csv-jena": ("jena.csv", CSV_JENA, lambda p: series_csv.load_series(
        p, target="T (degC)", time=["Date Time"], fill="drop")),
    "babi": ("qa1_train.txt", BABI, babi.read_file),
    "pairs": ("fra.txt", PAIRS, pairs.read_pairs),
    "pairs-columns": ("fra.txt", PAIRS, lambda p: pairs.read_pairs(p, source_column=1, target_column=0)),
    "parallel": ("train.en", PAIRS.replace(b"\t", b"\n"), lambda p: pairs.read_parallel(p, p)),
    "tsv": ("train.tsv", TSV, sentiment.read_tsv),
    "tsv-labels": ("train.tsv", TSV, lambda p: sentiment.read_tsv(p, label_names=["0", "1"])),
    "sst": ("train.txt", SST, lambda p: sentiment.read_sst_file(p, binary=False)),
    "sst-phrases": ("train.txt", SST, sentiment.read_sst_phrases),
    "rt": ("rt-polarity.neg", RT, read_rt),
    "vectors": ("glove.txt", VECTORS, lambda p: embeddings.read_vectors(p, VOCAB, 3)),
    "idx": ("floats-idx2", FLOATS, idx.read_idx),
    "mnist-images": ("train-images-idx3-ubyte", IMAGES, read_mnist_images),
    "mnist-labels": ("train-labels-idx1-ubyte", LABELS, read_mnist_labels),
}
CONTAINERS = {  # which readers also read a compressed file, under which name
    "gz": ["text", "charlm-spaced", "csv", "babi", "pairs", "tsv", "sst", "vectors", "idx", "mnist-images"],
    "zip": ["csv", "pairs"],
}
CASES = [(name, None) for name in READERS] + [(name, c) for c, names in CONTAINERS.items() for name in names]


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zipped(data: bytes, member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


# ----- mutations -------------------------------------------------------------------------------------

INTERESTING = [b"\t", b"\n", b"\r", b"\r\n", b",", b'"', b" ", b"\x00", b"\xff", b"\xc3", b"\xe2\x80", b"(", b")",
               b"?", b"-", b".", b"0", b"1", b"9" * 12, b"nan", b"inf", b"1e999", b"-1", b"\x93", b"\x81",
               b"\x1f\x8b", b"PK\x03\x04", b"\x00\x00\x08\x03", b"\xff\xff\xff\xff"]


@st.composite
def mutated(draw, sample: bytes) -> bytes:
    """The sample with 1-4 edits: flip a bit, insert or overwrite with interesting bytes or random
    bytes, delete or duplicate a run, cut the end."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "overwrite", "delete", "duplicate", "cut"]))
        pos = draw(st.integers(0, len(data)))
        size = draw(st.integers(1, 12))
        piece = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=6))
        if op == "flip" and data:
            data[min(pos, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = piece
        elif op == "overwrite":
            data[pos:pos + len(piece)] = piece
        elif op == "delete":
            del data[pos:pos + size]
        elif op == "duplicate":
            data[pos:pos] = data[pos:pos + size]
        elif op == "cut":
            del data[pos:]
    return bytes(data)


def contents(draw, sample: bytes, container: str | None, member: str) -> bytes:
    """File bytes: random, a mutated sample, a mutated sample compressed, or a mutated compressed sample."""
    pack = {None: lambda b: b, "gz": gz, "zip": lambda b: zipped(b, member)}[container]
    how = draw(st.sampled_from(["random", "mutated", "mutated-inside", "mutated-outside"]
                               if container else ["random", "mutated"]))
    if how == "random":
        return draw(st.binary(max_size=300))
    if how == "mutated-outside":
        return draw(mutated(pack(sample)))
    return pack(draw(mutated(sample)))


# ----- the property ----------------------------------------------------------------------------------

def call(read, path: Path):
    """read(path): success, or a documented error naming the file; anything else fails the test."""
    try:
        read(path)
    except UnicodeError as e:  # a ValueError, but the decoder's own words, without the file
        raise AssertionError(f"{path.name}: a raw {type(e).__name__} escaped: {e}") from e
    except (ValueError, TypeError) as e:
        documented = type(e) in (ValueError, TypeError) or type(e).__module__.startswith("rnnkit")
        assert documented, f"{path.name}: {type(e).__module__}.{type(e).__name__} escaped: {e}"
        assert path.name in str(e), f"the message does not name the file {path.name}: {e}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore:no explicit representation of timezones")  # numpy reads +05:00 as UTC
@pytest.mark.parametrize("reader, container", CASES, ids=[f"{r}-{c}" if c else r for r, c in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reader_fails_only_with_documented_errors(workdir, reader, container, data):
    name, sample, read = READERS[reader]
    directory = workdir / (f"{reader}-{container}" if container else reader)
    directory.mkdir(exist_ok=True)
    path = directory / ({"gz": f"{name}.gz", "zip": f"{Path(name).stem}.zip"}.get(container, name))
    for stale in directory.iterdir():  # the readers of a directory (MNIST, RT) find only this example's files
        stale.unlink()
    path.write_bytes(contents(data.draw, sample, container, member=name))
    call(read, path)


@pytest.mark.parametrize("reader", list(READERS))
def test_the_samples_are_valid(workdir, reader):
    """The mutations start from files every reader accepts (else they would test the first check only)."""
    name, sample, read = READERS[reader]
    directory = workdir / f"valid-{reader}"
    directory.mkdir()
    (directory / name).write_bytes(sample)
    read(directory / name)
    for container in (c for c, names in CONTAINERS.items() if reader in names):
        packed = gz(sample) if container == "gz" else zipped(sample, name)
        path = directory / (f"{name}.gz" if container == "gz" else f"{Path(name).stem}.zip")
        path.write_bytes(packed)
        read(path)


# ----- inputs the fuzzer found, or would find only by luck ----------------------------------------------

def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def idx_header(dims, dtype=0x08) -> bytes:
    return bytes([0, 0, dtype, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


CRAFTED = [
    ("idx", None, idx_header([65536] * 4), "truncated: shape (65536, 65536, 65536, 65536)"),  # 2**64 overflowed int64
    ("idx", None, idx_header([2**32 - 1] * 2) + b"\x00", "needs 18446744065119617025 bytes"),
    ("idx", None, idx_header([1] * 255), "at most 32 dimensions"),  # numpy's reshape stops at 64
    ("csv-parts", None, CSV_PARTS.replace(b"1,2010,", b"1,99999999999999,"), "'99999999999999' is out of range"),
    ("csv-parts", None, CSV_PARTS.replace(b"1,2010,", b"1,1e300,"), "'1e300' is out of range"),
    ("csv-parts", None, CSV_PARTS.replace(b"1,2010,", b"1,0,"), "0 is outside 1..9999"),
    ("csv", None, CSV.replace(b"2021-01-01 00:00", b"99999999999-01-01"), "outside the years 1..9999"),
    ("rt", None, RT.replace(b"silly", b"si\x9dlly"), "byte 0x9d at byte offset 15 is not Windows-1252"),
    ("csv", "zip", zipped(CSV, "series.csv")[1:], "cannot read series.csv from the zip archive"),  # was OSError
    ("csv", "zip", zipped(CSV, "series.csv")[:60], "not a readable zip archive"),
    ("csv", "gz", gz(CSV)[:-12], "corrupt gzip data"),  # was EOFError
    ("csv", "gz", flip_last(gz(CSV)), "corrupt gzip data"),  # was gzip.BadGzipFile (an OSError)
    ("csv", None, CSV.replace(b"1.7", b"\xff"), "not UTF-8 text (invalid start byte at byte 63, line 3)"),
    ("vectors", None, VECTORS.replace(b"-0.2", b"nan"), "line 2: value 2 is nan, not a finite number"),
    ("pairs", "zip", zipped(PAIRS, "fra.txt")[1:], "fra.txt: cannot read it from the zip file"),  # was OSError
]


@pytest.mark.parametrize("reader, container, content, message", CRAFTED)
def test_crafted_damage_is_a_value_error_naming_the_file(tmp_path, reader, container, content, message):
    name, _, read = READERS[reader]
    path = tmp_path / ({"gz": f"{name}.gz", "zip": f"{Path(name).stem}.zip"}.get(container, name))
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        read(path)
    assert type(info.value) is ValueError and str(path) in str(info.value)
