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
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
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
            if isinstance(pitch, bool) or not isinstance(pitch, (int, float)) or pitch != int(pitch) \
                    or not LOWEST <= pitch < LOWEST + KEYS:
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
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable MIDI file ({e})") from None
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
    T = int(round(max((end for _, _, end in notes), default=0) / step))
    roll = np.zeros((T, KEYS), dtype=np.float32)
    for note, start, end in notes:
        roll[int(round(start / step)):int(round(end / step)), note - LOWEST] = 1.0
    return roll
