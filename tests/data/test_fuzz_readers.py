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
import json
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data import babi, embeddings, idx, music, pairs, reviews, scenes, sentiment, series_csv, text
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


def mat_bytes(compressed: bool = False) -> bytes:
    """A B-L piano-roll .mat: traindata, validdata, testdata, each a 1 x N cell of T x 88 uint8 rolls."""
    import scipy.io

    cells = {}
    for key, count in (("traindata", 2), ("validdata", 1), ("testdata", 1)):
        cell = np.empty((1, count), dtype=object)
        for n in range(count):
            roll = np.zeros((2 + n, 88), dtype=np.uint8)
            roll[:, [39 + n, 43]] = 1
            cell[0, n] = roll
        cells[key] = cell
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, cells, do_compression=compressed)
    return buffer.getvalue()


def midi_bytes() -> bytes:
    roll = np.zeros((4, 88), dtype=np.float32)
    roll[0:2, 39] = roll[1, 43] = roll[3, [46, 50]] = 1
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return music.write_midi(roll, Path(d) / "x.mid", frames_per_beat=2).read_bytes()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(scenes.generate_scenes(1, size=16, seed=0).images[0].transpose(1, 2, 0)).save(buffer, "PNG")
    return buffer.getvalue()


MAT = mat_bytes()
MAT_COMPRESSED = mat_bytes(compressed=True)  # every variable an miCOMPRESSED element
PIANO_JSON = json.dumps({"train": [[[60, 64], [], [62.0]], [[21], [108]]], "valid": [[[60], [67, 71]]],
                         "test": [[[], [55]]]}).encode()
MIDI = midi_bytes()
REVIEWS = tar_bytes({"poldata.README.2.0": b"not a review\n",  # skipped: not txt_sentoken/{pos,neg}/cv###_*.txt
                     "txt_sentoken/pos/cv000_29590.txt": b"a great film .\nloved it .\n",
                     "txt_sentoken/neg/cv101_29416.txt": b"plot , what plot ?\n\nthe end .\n"})
CAPTIONS = b"image,caption\nimg0.png\ta small red circle\nimg0.png#1\tA red circle.\nimg1.png,a large blue square\n"
PNG = png_bytes()


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


def read_folder_captions(path):
    """The folder's captions file is the fuzzed file; its images are valid."""
    for name in ("img0.png", "img1.png"):
        (path.parent / name).write_bytes(PNG)
    return scenes.read_image_folder(path.parent, 16)


def read_folder_image(path):
    """One of the folder's images is the fuzzed file; the captions file is valid."""
    (path.parent / "captions.txt").write_bytes(f"{path.name}\ta small red circle\n".encode())
    return scenes.read_image_folder(path.parent, 16)


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
    "music-mat": ("rolls.mat", MAT, music.read_piano_rolls),
    "music-mat-compressed": ("rolls.mat", MAT_COMPRESSED, music.read_piano_rolls),
    "music-json": ("rolls.json", PIANO_JSON, music.read_piano_rolls),
    "midi": ("piece.mid", MIDI, lambda p: music.read_midi(p, frames_per_beat=2)),
    "reviews": ("review_polarity.tar", REVIEWS, reviews.read_reviews),  # the gz case: review_polarity.tar.gz
    "captions-file": ("captions.txt", CAPTIONS, scenes.read_captions_file),
    "image-folder-captions": ("captions.txt", CAPTIONS, read_folder_captions),
    "image-folder-image": ("img0.png", PNG, read_folder_image),
}
CONTAINERS = {  # which readers also read a compressed file, under which name
    "gz": ["text", "charlm-spaced", "csv", "babi", "pairs", "tsv", "sst", "vectors", "idx", "mnist-images",
           "reviews"],
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


def deflate_bits(bits: list[int]) -> bytes:
    """Bits packed as deflate reads them (first bit in the lowest bit of the first byte)."""
    bits = bits + [0] * (-len(bits) % 8)
    return bytes(sum(b << i for i, b in enumerate(bits[k:k + 8])) for k in range(0, len(bits), 8))


def gz_damaged_after(data: bytes) -> bytes:
    """A gzip stream that inflates to ``data`` (a stored block), then hits an invalid distance code (30, in a
    fixed-Huffman block: length code 257, 0000001, then distance 11110): zlib.error once a reader gets there."""
    stored = b"\x00" + len(data).to_bytes(2, "little") + (0xFFFF - len(data)).to_bytes(2, "little") + data
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0
    return header + stored + deflate_bits([1, 1, 0] + [0] * 6 + [1] + [1, 1, 1, 1, 0])


def midi_delta(ticks: int) -> bytes:
    """A one-note MIDI file whose note ends ``ticks`` after it starts."""
    import mido

    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=0),
                            mido.Message("note_off", note=60, time=ticks)])
    buffer = io.BytesIO()
    mido.MidiFile(ticks_per_beat=480, tracks=[track]).save(file=buffer)
    return buffer.getvalue()


def png_broken_chunk() -> bytes:
    """PNG with its image data in two IDAT chunks and a chunk of an invalid type between them, which PIL meets
    while decoding (a SyntaxError; met while opening, PIL would try other formats)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    size = int.from_bytes(PNG[33:37], "big")  # IDAT follows the 33 bytes of signature and IHDR, IEND its 12
    data = PNG[41:41 + size]
    return PNG[:33] + chunk(b"IDAT", data[:100]) + b"\x00" * 5 + b"IEN" + chunk(b"IDAT", data[100:]) + PNG[-12:]


TWELVE_REVIEWS = tar_bytes({f"txt_sentoken/pos/cv{k:03d}_0.txt": b"good .\n" for k in range(12)})[:12 * 1024]
ROLL_TAG = b"\x02\x00\x00\x00\xb0\x00\x00\x00"  # miUINT8, 176 bytes: the first 2 x 88 roll's data
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
    # scipy's loadmat segfaulted on a numeric element of type 10 (or 0, 8, 11, 14, 15, >= 19)
    ("music-mat", None, MAT.replace(ROLL_TAG, b"\x0a" + ROLL_TAG[1:], 1), "byte offset 240: data type 10 is not"),
    ("music-mat", None, MAT.replace(ROLL_TAG, b"\x00" + ROLL_TAG[1:], 1), "data type 0 is not MATLAB v5 data"),
    ("music-json", None, PIANO_JSON.replace(b"[21]", b"[Infinity]"), "train[1] step 0: expected MIDI pitches "
     "21..108, got inf"),  # was OverflowError from int(inf)
    ("music-json", None, PIANO_JSON.replace(b"[21]", b"[NaN]"), "got nan"),  # int(nan): a ValueError, no file
    ("music-json", None, PIANO_JSON.replace(b"[21]", b"[" + b"1" * 5000 + b"]"), "not a readable JSON file"),
    ("midi", None, MIDI.replace(b"\xffQ\x03", b"\xffQ\x00"), "not a readable MIDI file (IndexError"),  # escaped
    ("midi", None, MIDI[:12] + b"\x00\x00" + MIDI[14:], "ticks per beat >= 1, got 0"),  # was ZeroDivisionError
    ("midi", None, midi_delta(2**40), "more than 1,048,576 frames"),  # was np.zeros of 751 GiB: MemoryError
    ("midi", None, midi_delta(2**1100), "more than 1,048,576 frames"),  # was OverflowError (int / float)
    ("reviews", "gz", gz_damaged_after(TWELVE_REVIEWS), "not a readable tar archive (error: Error -3"),  # was
    # zlib.error, raised past the first 8 KiB (gzip inflates ahead that much; an error there is tarfile's ReadError)
    ("reviews", None, tar_bytes({"txt_sentoken/neg/cv000_1.txt": b"caf\xe9 .\n"}),
     "txt_sentoken/neg/cv000_1.txt: not UTF-8 at byte 3"),
    ("captions-file", None, CAPTIONS.replace(b"square", b"squ\xe9re"),
     "line 4: not UTF-8 text (byte 0xe9 at byte offset 92)"),  # was a raw UnicodeDecodeError
    ("image-folder-image", None, PNG.replace(b"\x00\x00\x00\rIHDR", b"\x00\x00\x00\x0cIHDR"),
     "not an image PIL can read (Truncated IHDR chunk)"),  # was PIL's ValueError, without the file
    ("image-folder-image", None, png_broken_chunk(), "not an image PIL can read (broken PNG file"),  # SyntaxError
]


@pytest.mark.parametrize("reader, container, content, message", CRAFTED)
def test_crafted_damage_is_a_value_error_naming_the_file(tmp_path, reader, container, content, message):
    name, _, read = READERS[reader]
    path = tmp_path / ({"gz": f"{name}.gz", "zip": f"{Path(name).stem}.zip"}.get(container, name))
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        read(path)
    assert type(info.value) is ValueError and str(path) in str(info.value)
