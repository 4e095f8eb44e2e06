r"""Captioned scenes, generated from a seed, and a reader for a folder of one's own captioned images.

**Generated scenes** (lectures 003 and 004's image captioning, on data a CPU trains on in minutes). A scene is
an RGB canvas of ``size`` × ``size`` pixels (dark, with faint seeded noise) holding 1 to 3 shapes, each a
``circle``, ``square`` or ``triangle`` in one of :data:`COLOURS` and one of two sizes (``small``: 0.2 × size
across, ``large``: 0.34 × size). Shapes never overlap and their centres are at least ``0.15 × size`` apart
horizontally, so "left of" is never ambiguous. The caption lists the shapes from left to right::

    1 shape:   "a small red circle"
    2 shapes:  "a large blue square left of a small red circle"
    3 shapes:  "a small green triangle left of a large yellow circle left of a small blue square"

Every word of a caption is read off the image (shape, colour, size, order), and the image determines its
caption exactly, so exact match is a fair metric. The vertical position is random and not described.

**Questions** for visual question answering (DMN+, lecture 004), generated from the same scenes, each with a
one-word answer determined by the image (:func:`scene_questions`):

=========================================  ======================================  ==================
question                                   asked when                              answer
=========================================  ======================================  ==================
``what colour is the circle ?``            exactly one circle                      ``red``
``what colour is the shape left of the     exactly one square, with a shape on     ``blue``
square ?``                                 its left (the nearest one)
``what size is the triangle ?``            exactly one triangle                    ``small`` / ``large``
``how many squares are there ?``           always                                  ``zero`` .. ``three``
=========================================  ======================================  ==================

**Per-pixel labels** for segmentation (`rnnkit train mdlstm --segment`, lecture 004's MDLSTM): each pixel is
``background``, ``circle``, ``square`` or ``triangle`` (:func:`label_mask`, drawn with the masks :func:`draw` paints).

**Your own images** (:func:`read_image_folder`): a folder of images (any format PIL reads) and a captions
file with one ``image<TAB>caption`` (or ``image,caption``) line per caption; an image may have several
captions (Flickr8k's ``name.jpg#0`` suffixes are accepted). Images are converted to RGB and resized to the
model's size.

Shapes: images are ``uint8`` arrays ``(N, 3, S, S)`` (channels first, as torch's convolutions read them).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (60, 90, 240), "yellow": (235, 215, 40),
           "purple": (170, 60, 210)}
SIZES = {"small": 0.2, "large": 0.34}  # the shape's width as a fraction of the canvas
NUMBERS = ("zero", "one", "two", "three")
MIN_SIZE = 16  # smaller canvases cannot hold three shapes that are told apart
MAX_TRIES = 200
MIN_GAP = 0.15  # centres at least this fraction of the canvas apart horizontally


@dataclass(frozen=True)
class Shape:
    """One drawn shape: kind, colour and size names, and its centre (x, y) in pixels."""

    kind: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.kind}"


@dataclass
class Scene:
    """The shapes of one image, sorted left to right."""

    shapes: list[Shape]

    @property
    def caption(self) -> str:
        return " left of ".join(s.phrase for s in self.shapes)


@dataclass
class CaptionedImages:
    """Images with their captions: images (N, 3, S, S) uint8; captions[i] the reference captions of image i
    (one for a generated scene, one or more for a folder); names[i] says where image i came from."""

    images: np.ndarray
    captions: list[list[str]]
    names: list[str]
    scenes: list[Scene] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, index) -> "CaptionedImages":
        index = list(index)
        return CaptionedImages(self.images[index], [self.captions[i] for i in index], [self.names[i] for i in index],
                               None if self.scenes is None else [self.scenes[i] for i in index])


def check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise ValueError(f"scenes: expected an image size >= {MIN_SIZE} pixels, got {size!r}")
    return size


def _mask(kind: str, width: int, size: int, cx: float, cy: float) -> np.ndarray:
    """(S, S) bool: the pixels of a shape of ``width`` pixels centred at (cx, cy)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    half = width / 2
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= half ** 2
    if kind == "square":
        return (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    # an upward triangle: apex at the top centre, base along the bottom of its box
    top, bottom = cy - half, cy + half
    inside_rows = (yy >= top) & (yy <= bottom)
    reach = half * (yy - top) / max(width, 1e-9)  # half-width at this row: 0 at the apex, half at the base
    return inside_rows & (np.abs(xx - cx) <= reach)


def random_scene(rng: random.Random, size: int, max_shapes: int = 3) -> Scene:
    """1..max_shapes shapes placed without overlap, centres at least 0.15 × size apart horizontally."""
    check_size(size)
    if not 1 <= max_shapes <= 3:
        raise ValueError(f"scenes: expected max_shapes in 1..3, got {max_shapes!r}")
    while True:
        count = rng.randint(1, max_shapes)
        placed: list[tuple[Shape, float]] = []
        for _ in range(MAX_TRIES):
            if len(placed) == count:
                break
            size_name = rng.choice(list(SIZES))
            width = round(SIZES[size_name] * size)
            half = width / 2
            cx, cy = rng.uniform(half + 1, size - half - 1), rng.uniform(half + 1, size - half - 1)
            ok = all(abs(cx - s.x) >= MIN_GAP * size  # "left of" is never a close call
                     and (abs(cx - s.x) >= half + w / 2 + 1 or abs(cy - s.y) >= half + w / 2 + 1)  # no overlap
                     for s, w in placed)
            if ok:
                placed.append((Shape(rng.choice(SHAPES), rng.choice(list(COLOURS)), size_name, cx, cy), width))
        if len(placed) == count:
            return Scene(sorted((s for s, _ in placed), key=lambda s: s.x))


def draw(scene: Scene, size: int, rng: random.Random | None = None) -> np.ndarray:
    """The scene as a (3, S, S) uint8 image: a dark canvas (with faint noise when ``rng`` is given)."""
    image = np.full((size, size, 3), 20.0)
    if rng is not None:
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, (size, size, 3))
        image = image + noise
    for s in scene.shapes:
        image[_mask(s.kind, round(SIZES[s.size] * size), size, s.x, s.y)] = COLOURS[s.colour]
    return np.clip(image, 0, 255).astype(np.uint8).transpose(2, 0, 1)


SEGMENT_CLASSES = ("background", *SHAPES)  # the per-pixel labels of label_mask: 0 the canvas, 1 + SHAPES.index(kind)


def label_mask(scene: Scene, size: int) -> np.ndarray:
    """The scene's per-pixel labels as a (S, S) uint8 array: 0 for the canvas, ``1 + SHAPES.index(kind)`` for the
    pixels of a shape (:data:`SEGMENT_CLASSES`). The masks are :func:`draw`'s own, painted in its order, so a pixel
    has label k > 0 exactly when ``draw`` paints it with the colour of a shape of kind k."""
    labels = np.zeros((size, size), dtype=np.uint8)
    for s in scene.shapes:
        labels[_mask(s.kind, round(SIZES[s.size] * size), size, s.x, s.y)] = 1 + SHAPES.index(s.kind)
    return labels


def generate_scenes(n: int, *, size: int = 32, seed: int = 0, max_shapes: int = 3, name: str = "scenes"
                    ) -> CaptionedImages:
    """n scenes and their captions from ``seed`` (the same seed, the same images)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"scenes: expected at least 1 scene, got {n!r}")
    check_size(size)
    rng = random.Random(seed)
    scenes = [random_scene(rng, size, max_shapes) for _ in range(n)]
    images = np.stack([draw(s, size, rng) for s in scenes])
    return CaptionedImages(images, [[s.caption] for s in scenes], [f"{name} {i}" for i in range(n)], scenes)


def scene_splits(train_size: int, valid_size: int, test_size: int, *, size: int = 32, seed: int = 0,
                 max_shapes: int = 3) -> dict[str, CaptionedImages]:
    """{"train", "valid", "test"}: three independent draws (seeds derived from ``seed``), so no image of the
    held-out splits is a training image (a short caption may still recur: there are only 30 one-shape captions)."""
    return {name: generate_scenes(n, size=size, seed=seed * 3 + k + 1, max_shapes=max_shapes,
                                  name=f"scenes (seed {seed}) {name}")
            for k, (name, n) in enumerate((("train", train_size), ("valid", valid_size), ("test", test_size)))}


# ----- questions ------------------------------------------------------------------------------------------

QUESTION_TYPES = ("colour", "colour-left-of", "size", "count")


def scene_questions(scene: Scene) -> list[tuple[str, str, str]]:
    """Every question the scene answers unambiguously: (type, question, answer) triples (see the module docstring)."""
    out = []
    kinds = [s.kind for s in scene.shapes]
    for kind in SHAPES:
        if kinds.count(kind) == 1:
            i = kinds.index(kind)
            out.append(("colour", f"what colour is the {kind} ?", scene.shapes[i].colour))
            out.append(("size", f"what size is the {kind} ?", scene.shapes[i].size))
            if i > 0:
                out.append(("colour-left-of", f"what colour is the shape left of the {kind} ?",
                            scene.shapes[i - 1].colour))
        out.append(("count", f"how many {kind}s are there ?", NUMBERS[kinds.count(kind)]))
    return out


@dataclass
class SceneQuestions:
    """Questions about images: image[i] indexes ``images``; question[i] the words; answer[i] one word."""

    images: np.ndarray
    image: list[int]
    types: list[str]
    questions: list[str]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.questions)


def question_splits(train_size: int, valid_size: int, test_size: int, *, size: int = 32, seed: int = 0
                    ) -> dict[str, SceneQuestions]:
    """Scenes of :func:`scene_splits` (``*_size`` scenes each), one question per scene, its type drawn evenly
    among those the scene can answer (so "count" does not crowd out the rest)."""
    scenes = scene_splits(train_size, valid_size, test_size, size=size, seed=seed)
    rng = random.Random(seed + 7919)
    result = {}
    for name, data in scenes.items():
        image, types, questions, answers = [], [], [], []
        for i, scene in enumerate(data.scenes):
            options = scene_questions(scene)
            kind = rng.choice(sorted({t for t, _, _ in options}))
            t, q, a = rng.choice([o for o in options if o[0] == kind])
            image.append(i)
            types.append(t)
            questions.append(q)
            answers.append(a)
        result[name] = SceneQuestions(data.images, image, types, questions, answers)
    return result


# ----- a folder of one's own images -----------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def load_image(path, size: int) -> np.ndarray:
    """One image file as (3, size, size) uint8 RGB, resized (bilinear) whatever its own size and mode."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {path}: no such file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError ("broken PNG file"), struct.error, ...
        raise ValueError(f"image {path}: not an image PIL can read ({' '.join(str(e).split())})") from None


def save_image(image: np.ndarray, path) -> Path:
    """A (3, S, S) uint8 image as a PNG (written atomically)."""
    import io

    from PIL import Image

    from ..train.checkpoint import atomic_write_bytes

    if image.ndim != 3 or image.shape[0] != 3 or image.dtype != np.uint8:
        raise ValueError(f"save_image: expected a (3, S, S) uint8 image, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def read_captions_file(path) -> dict[str, list[str]]:
    """{image file name: [captions]} from ``image<TAB>caption`` or ``image,caption`` lines (a header line
    ``image,caption`` and blank lines are skipped; ``name.jpg#0`` is ``name.jpg``), in file order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"captions file {path}: no such file (expected lines 'image<TAB>caption')")
    captions: dict[str, list[str]] = {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # the decoder's own message names neither the file nor the line
        line = len(raw[:e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at byte offset "
                         f"{e.start})") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # universal newlines, as open() reads
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.strip().lower() in ("image,caption", "image\tcaption")):
            continue
        sep = "\t" if "\t" in line else ","
        name, _, caption = line.partition(sep)
        name, caption = name.strip().split("#")[0], caption.strip()
        if not name or not caption:
            raise ValueError(f"{path}, line {number}: expected 'image<TAB>caption' (or 'image,caption'), got "
                             f"{line[:80]!r}")
        captions.setdefault(name, []).append(caption)
    if not captions:
        raise ValueError(f"captions file {path}: no caption lines (expected 'image<TAB>caption')")
    return captions


def read_image_folder(folder, size: int, *, captions=None) -> CaptionedImages:
    """A folder of images and its captions file (default ``FOLDER/captions.txt`` or ``captions.tsv``), every
    captioned image loaded and resized to size × size. A caption naming a missing image is an error; images
    without a caption are not used."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder {folder}: not a directory")
    if captions is None:
        found = [folder / n for n in ("captions.txt", "captions.tsv", "captions.csv") if (folder / n).is_file()]
        if not found:
            raise ValueError(f"image folder {folder}: no captions.txt (lines 'image<TAB>caption'); name the file "
                             "with --captions")
        captions = found[0]
    table = read_captions_file(captions)
    images, refs, names = [], [], []
    for name, caps in table.items():
        image_path = folder / name
        if not image_path.is_file():
            raise ValueError(f"{captions}: image {name!r} is not in {folder}")
        images.append(load_image(image_path, size))
        refs.append(caps)
        names.append(name)
    return CaptionedImages(np.stack(images), refs, names)
