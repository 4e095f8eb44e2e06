r"""Polyphonic music as piano rolls (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012), and MIDI files.

A piano roll is a binary matrix, one row per time step (a quarter note in the B-L JSB Chorales), one column
per key of the piano: column :math:`k` is MIDI note :math:`21 + k`, A0 (21) to C8 (108), 88 keys::

    roll (T, 88) float32, roll[t, k] = 1  <=>  note 21 + k sounds at step t

Two file forms hold the same B-L splits (train / valid / test):

* ``.mat`` (MATLAB v5, from Bai et al.'s TCN repository): keys ``traindata``, ``validdata``, ``testdata``,
  each a 1 x N cell of T x 88 uint8 rolls. Read with ``scipy.io.loadmat``.
* ``.json`` (czhuang/JSB-Chorales-dataset): ``{"train": [...], "valid": [...], "test": [...]}``, each
  sequence a list of time steps, each step the list of MIDI pitches sounding (possibly empty).

``write_midi`` turns a roll into a one-track MIDI file (mido): a key held over consecutive steps is one
note (a roll cannot tell a held note from a repeated one; this reading is the usual one), velocity 64,
``frames_per_beat`` steps per quarter note at ``bpm``. ``read_midi`` reads such a file back into a roll.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEYS = 88
LOWEST = 21  # MIDI note of column 0 (A0)
SPLITS = ("train", "valid", "test")
MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
TICKS_PER_BEAT = 480
MAX_MIDI_FRAMES = 2**20  # read_midi's limit: 1,048,576 frames, a 370 MB roll (days of music)


@dataclass
class PianoRolls:
    """The sequences of one split: rolls, each float32 (T_n, 88) of 0 / 1; source: file and split."""

    rolls: list[np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(self.rolls)

    @property
    def frames(self) -> int:
        return sum(len(r) for r in self.rolls)


def read_piano_rolls(path) -> dict[str, PianoRolls]:
    """{"train", "valid", "test"}: the piano rolls of a B-L ``.mat`` or ``.json`` file.

    Every problem names the file, and the split and sequence where it is: a missing file, a file that is not
    MATLAB / JSON, a missing split key (the keys found are listed), a roll that is not T x 88 of 0 / 1, a
    pitch outside 21..108.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"music: no such file {path} (expected a piano-roll .mat or .json file, e.g. "
                                "JSB_Chorales.mat)")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _read_mat(path)
    if suffix == ".json":
        return _read_json(path)
    raise ValueError(f"music: expected a .mat or .json piano-roll file, got {path.name!r}")


def _read_mat(path: Path) -> dict[str, PianoRolls]:
    import scipy.io

    _check_mat_elements(path)  # before scipy sees the file: some damage crashes its reader
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError... for damaged files
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    found = sorted(k for k in mat if not k.startswith("__"))
    missing = [key for key in MAT_KEYS.values() if key not in mat]
    if missing:
        raise ValueError(f"{path}: expected keys {', '.join(MAT_KEYS.values())}, missing {', '.join(missing)}; "
                         f"found {', '.join(found) or 'none'}")
    out = {}
    for split, key in MAT_KEYS.items():
        cell = mat[key]
        if cell.dtype != object or cell.ndim != 2 or cell.shape[0] != 1:
            raise ValueError(f"{path}: expected {key} to be a 1 x N cell array of T x {KEYS} rolls, got "
                             f"{cell.dtype} {cell.shape}")
        rolls = [_check_roll(np.asarray(r), f"{path} {key}[{n}]") for n, r in enumerate(cell[0])]
        out[split] = PianoRolls(_nonempty(rolls, path, key), f"{path}:{split}")
    return out


# MATLAB v5 data types scipy's element reader has a dtype for (miINT8..miUINT64, miUTF8..miUTF32); 14 is miMATRIX,
# 15 miCOMPRESSED. scipy (1.17) indexes a 20-slot table with the type code of every element inside a matrix, unchecked:
# 0, 8, 10, 11, 14, 15, 19 are NULL slots and 20 and up lie past it, a segmentation fault (scipy PR #25349).
_MAT_DATA_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})
_MAT_MATRIX, _MAT_COMPRESSED, _MAT_DEPTH = 14, 15, 64


def _check_mat_elements(path: Path) -> None:
    """Walk the data elements of a MATLAB v5 file (the top-level variables, compressed ones inflated, and every
    element nested in a matrix) and raise a ValueError naming the file and the byte offset of the first one whose
    type code is not a MATLAB data type or that runs past its container. Other files (v4, v7.3) pass unchecked."""
    import zlib

    raw = path.read_bytes()
    if len(raw) < 128 or 0 in raw[:4] or raw[124 + (raw[126:127] == b"I")] != 1:
        return  # not a v5 file: loadmat reads v4 itself, or refuses the file
    order = "<" if raw[126:128] == b"IM" else ">"

    def walk(data: bytes, start: int, end: int, where: str, depth: int, top: bool) -> None:
        if depth > _MAT_DEPTH:
            raise ValueError(f"{path}: {where}byte offset {start}: matrices nested over {_MAT_DEPTH} deep")
        pos = start
        while pos < end:
            if end - pos < 8:
                raise ValueError(f"{path}: {where}byte offset {pos}: a truncated data element tag")
            first, second = np.frombuffer(data, dtype=f"{order}u4", count=2, offset=pos).tolist()
            if not top and first >> 16:  # a small data element: type and size in 4 bytes, its data in the next 4
                if first & 0xFFFF not in _MAT_DATA_TYPES or first >> 16 > 4:
                    raise ValueError(f"{path}: {where}byte offset {pos}: a small data element of type "
                                     f"{first & 0xFFFF}, {first >> 16} bytes is not MATLAB v5 data")
                pos += 8
                continue
            body, stop = pos + 8, pos + 8 + second
            if stop > end:
                raise ValueError(f"{path}: {where}byte offset {pos}: a data element of {second} bytes runs past "
                                 f"the end of its container (byte {end})")
            if top and first == _MAT_COMPRESSED:
                try:
                    inner = zlib.decompress(data[body:stop])
                except zlib.error as e:
                    raise ValueError(f"{path}: byte offset {pos}: corrupt compressed variable ({e})") from None
                walk(inner, 0, len(inner), f"compressed variable at byte offset {pos}, ", depth + 1, False)
            elif first == _MAT_MATRIX:
                walk(data, body, stop, where, depth + 1, False)
            elif top or first not in _MAT_DATA_TYPES:
                raise ValueError(f"{path}: {where}byte offset {pos}: data type {first} is not "
                                 f"{'a MATLAB variable' if top else 'MATLAB v5 data'}")
            pos = stop if top else stop + (-second) % 8  # elements inside a matrix are padded to 8 bytes

    walk(raw, 128, len(raw), "", 0, True)


def _check_roll(roll: np.ndarray, where: str) -> np.ndarray:
    if roll.ndim != 2 or roll.shape[1] != KEYS or roll.shape[0] < 2:
        raise ValueError(f"{where}: expected a T x {KEYS} piano roll with T >= 2, got shape {roll.shape}")
    if not np.isin(roll, (0, 1)).all():
        bad = roll[~np.isin(roll, (0, 1))].flat[0].item()
        raise ValueError(f"{where}: expected a binary piano roll (0 / 1), got the value {bad!r}")
    return roll.astype(np.float32)


def _nonempty(rolls, path, key):
    if not rolls:
        raise ValueError(f"{path}: {key} holds no sequences")
    return rolls


def _read_json(path: Path) -> dict[str, PianoRolls]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, an int of > 4300 digits, nesting
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or any(s not in data for s in SPLITS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a JSON object with keys {', '.join(SPLITS)}, found {found}")
    out = {}
    for split in SPLITS:
        seqs = data[split]
        if not isinstance(seqs, list):
            raise ValueError(f"{path}: expected {split} to be a list of sequences, got {type(seqs).__name__}")
        rolls = [pitches_to_roll(seq, where=f"{path} {split}[{n}]") for n, seq in enumerate(seqs)]
        out[split] = PianoRolls(_nonempty(rolls, path, split), f"{path}:{split}")
    return out


def pitches_to_roll(steps, *, where: str = "sequence") -> np.ndarray:
    """[[60, 64, 67], [], ...] (MIDI pitches per step) -> roll float32 (T, 88)."""
    if not isinstance(steps, list) or len(steps) < 2:
        raise ValueError(f"{where}: expected a list of at least 2 time steps, got "
                         f"{len(steps) if isinstance(steps, list) else type(steps).__name__}")
    roll = np.zeros((len(steps), KEYS), dtype=np.float32)
    for t, step in enumerate(steps):
        if not isinstance(step, list):
            raise ValueError(f"{where} step {t}: expected a list of MIDI pitches, got {step!r}")
        for pitch in step:
            if isinstance(pitch, bool) or not isinstance(pitch, (int, float)) \
                    or (isinstance(pitch, float) and not pitch.is_integer()) or not LOWEST <= pitch < LOWEST + KEYS:
                raise ValueError(f"{where} step {t}: expected MIDI pitches {LOWEST}..{LOWEST + KEYS - 1}, got "
                                 f"{pitch!r}")
            roll[t, int(pitch) - LOWEST] = 1.0
    return roll


def write_midi(roll: np.ndarray, path, *, bpm: float = 120.0, frames_per_beat: int = 1, velocity: int = 64,
               program: int = 0) -> Path:
    """Write roll (T, 88) of 0 / 1 as a one-track MIDI file; returns the path. A key sounding over
    consecutive steps is one held note."""
    import mido

    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise ValueError(f"write_midi: expected a roll (T, {KEYS}), got shape {roll.shape}")
    if not np.isin(roll, (0, 1)).all():
        raise ValueError("write_midi: expected a binary roll (0 / 1); sample or threshold probabilities first")
    if not bpm > 0 or frames_per_beat < 1:
        raise ValueError(f"write_midi: expected bpm > 0 and frames_per_beat >= 1, got {bpm}, {frames_per_beat}")
    step_ticks = TICKS_PER_BEAT // frames_per_beat
    on = roll.astype(bool)
    padded = np.vstack([np.zeros((1, KEYS), bool), on, np.zeros((1, KEYS), bool)])  # (T + 2, 88)
    events = []  # (tick, 0 = off before 1 = on, note)
    for t in range(1, len(padded)):
        for k in np.flatnonzero(padded[t - 1] & ~padded[t]):
            events.append(((t - 1) * step_ticks, 0, LOWEST + int(k)))
        for k in np.flatnonzero(padded[t] & ~padded[t - 1]):
            events.append(((t - 1) * step_ticks, 1, LOWEST + int(k)))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, kind, note in sorted(events):
        track.append(mido.Message("note_on" if kind else "note_off", note=note, velocity=velocity if kind else 0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT, tracks=[track])
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    midi.save(str(tmp))
    tmp.replace(path)
    return path


def read_midi(path, *, frames_per_beat: int = 1) -> np.ndarray:
    """A MIDI file -> roll float32 (T, 88), every track merged, sampled every 1 / frames_per_beat beats.
    Notes outside the 88 keys are an error naming them."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except Exception as e:  # mido raises OSError, EOFError, ValueError, IndexError, KeyError... for damaged files
        raise ValueError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None
    if midi.ticks_per_beat < 1:
        raise ValueError(f"{path}: expected a MIDI file of ticks per beat >= 1, got {midi.ticks_per_beat}")
    step = midi.ticks_per_beat / frames_per_beat
    notes, sounding = [], {}
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[msg.note] = tick
            elif msg.type in ("note_on", "note_off") and msg.note in sounding:
                notes.append((msg.note, sounding.pop(msg.note), tick))
    bad = sorted({n for n, _, _ in notes if not LOWEST <= n < LOWEST + KEYS})
    if bad:
        raise ValueError(f"{path}: notes {bad} lie outside the 88 keys {LOWEST}..{LOWEST + KEYS - 1}")
    last = max((end for _, _, end in notes), default=0)  # an int of any size: mido's delta times are unbounded
    if last > MAX_MIDI_FRAMES * step:
        raise ValueError(f"{path}: the notes last {last} ticks, more than {MAX_MIDI_FRAMES:,} frames of "
                         f"1/{frames_per_beat} beat (a damaged delta time?)")
    T = int(round(last / step))
    roll = np.zeros((T, KEYS), dtype=np.float32)
    for note, start, end in notes:
        roll[int(round(start / step)):int(round(end / step)), note - LOWEST] = 1.0
    return roll
