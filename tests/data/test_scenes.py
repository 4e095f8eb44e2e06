"""Generated captioned scenes: seeded, captions match the drawn shapes; questions; a folder of own images."""
import random

import numpy as np
import pytest

from rnnkit.data.scenes import (COLOURS, NUMBERS, SIZES, draw, generate_scenes, load_image, question_splits,
                                random_scene, read_captions_file, read_image_folder, save_image, scene_questions,
                                scene_splits)


def test_seeded_and_distinct_splits():
    a, b = generate_scenes(20, size=32, seed=3), generate_scenes(20, size=32, seed=3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert a.images.shape == (20, 3, 32, 32) and a.images.dtype == np.uint8
    splits = scene_splits(10, 5, 5, size=32, seed=0)
    assert not np.array_equal(splits["train"].images[:5], splits["test"].images)


def test_captions_match_the_drawn_shapes():
    rng = random.Random(1)
    for _ in range(50):
        scene = random_scene(rng, 32)
        image = draw(scene, 32)  # no noise: exact colours
        xs = [s.x for s in scene.shapes]
        assert xs == sorted(xs) and 1 <= len(scene.shapes) <= 3
        words = scene.caption.split(" left of ")
        assert len(words) == len(scene.shapes)
        for phrase, s in zip(words, scene.shapes):
            assert phrase == f"a {s.size} {s.colour} {s.kind}"
            # the centre pixel (a triangle's lower middle) carries the shape's colour
            y = int(s.y + (SIZES[s.size] * 32) / 4) if s.kind == "triangle" else int(s.y)
            assert tuple(image[:, y, int(s.x)]) == COLOURS[s.colour]
        coloured = (image != 20).any(axis=0).sum()  # no overlap: the painted area is the sum of the shapes
        assert coloured > 0


def test_questions_are_answered_by_the_scene():
    rng = random.Random(2)
    for _ in range(30):
        scene = random_scene(rng, 32)
        kinds = [s.kind for s in scene.shapes]
        for kind, question, answer in scene_questions(scene):
            if kind == "count":
                shape = question.split()[2][:-1]
                assert answer == NUMBERS[kinds.count(shape)]
            elif kind == "colour-left-of":
                i = kinds.index(question.split()[-2])
                assert answer == scene.shapes[i - 1].colour
    q = question_splits(20, 5, 5, size=32)
    assert len(q["train"]) == 20 and set(q["train"].answers) <= set(COLOURS) | set(SIZES) | set(NUMBERS)


def test_image_folder(tmp_path):
    big = np.zeros((3, 50, 70), dtype=np.uint8)
    big[0] = 200
    for name in ("a.png", "b.png", "c.png"):
        save_image(big if name != "b.png" else big[:, :20, :20].copy(), tmp_path / name)
    (tmp_path / "captions.txt").write_text("image,caption\na.png#0,A red image.\na.png#1,red\nb.png\tsmall red\n"
                                           "c.png,another\n")
    data = read_image_folder(tmp_path, 16)
    assert data.images.shape == (3, 3, 16, 16) and data.captions[0] == ["A red image.", "red"]
    assert load_image(tmp_path / "a.png", 24)[0, 0, 0] == 200
    (tmp_path / "bad.txt").write_text("a.png\n")
    with pytest.raises(ValueError, match="bad.txt, line 1"):
        read_captions_file(tmp_path / "bad.txt")
    (tmp_path / "missing.txt").write_text("zzz.png\tcaption\n")
    with pytest.raises(ValueError, match="'zzz.png' is not in"):
        read_image_folder(tmp_path, 16, captions=tmp_path / "missing.txt")
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image PIL can read"):
        load_image(tmp_path / "junk.png", 16)


def test_bad_sizes():
    with pytest.raises(ValueError, match="image size >= 16"):
        generate_scenes(3, size=8)
    with pytest.raises(ValueError, match="at least 1 scene"):
        generate_scenes(0)
