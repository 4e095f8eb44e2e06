"""Piano-roll readers (.mat and .json forms of the B-L sets) and MIDI writing: real files, round trips, bad input."""
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from rnnkit.data.music import pitches_to_roll, read_midi, read_piano_rolls, write_midi

MUSIC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "polyphonic_music"
needs_music = pytest.mark.skipif(not (MUSIC / "JSB_Chorales.mat").is_file(),
                                 reason=f"the B-L piano rolls are not in {MUSIC}")


def _rolls(n, T=5, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((T + k, 88)) < 0.1).astype(np.uint8) for k in range(n)]


def _write_mat(path, **overrides):
    cells = {}
    for key, n in (("traindata", 3), ("validdata", 2), ("testdata", 2)):
        cell = np.empty((1, n), dtype=object)
        for k, r in enumerate(_rolls(n)):
            cell[0, k] = r
        cells[key] = cell
    cells.update(overrides)
    scipy.io.savemat(path, {k: v for k, v in cells.items() if v is not None})
    return path


@needs_music
def test_real_jsb_mat_and_json_hold_the_same_rolls():
    mat = read_piano_rolls(MUSIC / "JSB_Chorales.mat")
    js = read_piano_rolls(MUSIC / "jsb_chorales_json" / "jsb-chorales-quarter.json")
    assert {k: len(v) for k, v in mat.items()} == {"train": 229, "valid": 76, "test": 77}  # B-L's split
    assert {k: v.frames for k, v in mat.items()} == {"train": 13807, "valid": 4602, "test": 4725}
    for split in mat:
        assert all(np.array_equal(a, b) for a, b in zip(mat[split].rolls, js[split].rolls))
    r = mat["train"].rolls[0]
    assert r.dtype == np.float32 and r.shape[1] == 88 and set(np.unique(r)) <= {0.0, 1.0}


def test_pitches_to_roll_and_midi_round_trip(tmp_path):
    roll = pitches_to_roll([[60, 64, 67], [60, 64, 67], [], [21, 108]])
    assert roll.shape == (4, 88) and roll[0, 60 - 21] == 1 and roll[3, 0] == 1 and roll[3, 87] == 1 and roll[2].sum() == 0
    path = write_midi(roll, tmp_path / "a.mid", bpm=90)
    import mido

    midi = mido.MidiFile(str(path))
    ons = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert sorted(m.note for m in ons) == [21, 60, 64, 67, 108]  # held C-E-G is one note each
    assert np.array_equal(read_midi(path), roll)
    rolls = _rolls(2, T=20)
    for frames_per_beat in (1, 4):
        write_midi(rolls[1], tmp_path / "b.mid", frames_per_beat=frames_per_beat)
        back = read_midi(tmp_path / "b.mid", frames_per_beat=frames_per_beat)
        last = int(np.flatnonzero(rolls[1].any(1))[-1]) + 1  # trailing silence is not in a MIDI file
        assert np.array_equal(back, rolls[1][:last])


def test_synthetic_mat_reads(tmp_path):
    splits = read_piano_rolls(_write_mat(tmp_path / "m.mat"))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 2, 2]
    assert splits["train"].rolls[2].shape == (7, 88)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file .*nope.mat"):
        read_piano_rolls(tmp_path / "nope.mat")
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file but then garbage" + bytes(range(256)))
    with pytest.raises(ValueError, match="bad.mat: not a readable MATLAB .mat file"):
        read_piano_rolls(tmp_path / "bad.mat")
    with pytest.raises(ValueError, match="expected keys traindata, validdata, testdata, missing validdata; found "
                                         "testdata, traindata"):
        read_piano_rolls(_write_mat(tmp_path / "k.mat", validdata=None))
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = np.zeros((5, 87), np.uint8)
    with pytest.raises(ValueError, match=r"testdata\[0\]: expected a T x 88 piano roll with T >= 2, got shape \(5, 87\)"):
        read_piano_rolls(_write_mat(tmp_path / "s.mat", testdata=cell))
    cell[0, 0] = np.full((5, 88), 3, np.uint8)
    with pytest.raises(ValueError, match="expected a binary piano roll .* got the value 3"):
        read_piano_rolls(_write_mat(tmp_path / "v.mat", testdata=cell))
    (tmp_path / "x.json").write_text(json.dumps({"train": [[[60], [61]]], "valid": [[[60], [61]]]}))
    with pytest.raises(ValueError, match=r"keys train, valid, test, found \['train', 'valid'\]"):
        read_piano_rolls(tmp_path / "x.json")
    (tmp_path / "p.json").write_text(json.dumps({s: [[[60], [200]]] for s in ("train", "valid", "test")}))
    with pytest.raises(ValueError, match=r"train\[0\] step 1: expected MIDI pitches 21..108, got 200"):
        read_piano_rolls(tmp_path / "p.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ValueError, match="c.json: not a readable JSON file"):
        read_piano_rolls(tmp_path / "c.json")
    with pytest.raises(ValueError, match="expected a .mat or .json piano-roll file, got 'r.txt'"):
        (tmp_path / "r.txt").write_text("x")
        read_piano_rolls(tmp_path / "r.txt")
    with pytest.raises(ValueError, match=r"write_midi: expected a roll \(T, 88\), got shape \(3, 4\)"):
        write_midi(np.zeros((3, 4)), tmp_path / "z.mid")
    with pytest.raises(ValueError, match="expected a binary roll"):
        write_midi(np.full((3, 88), 0.5), tmp_path / "z.mid")
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    with pytest.raises(ValueError, match="bad.mid: not a readable MIDI file"):
        read_midi(tmp_path / "bad.mid")
