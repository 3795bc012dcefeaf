"""Shared test fixtures: a tiny synthetic MNIST written in the real IDX format.

The tests never need the real MNIST (nor a network): `tiny_mnist` writes a
few hundred 28x28 images into <tmp>/MNIST/raw/ exactly as torchvision
expects, so the course's real loading code (dl_utils.read_idx ->
dl_utils.load_mnist_data) runs on them. Each class is a bright bar whose
position and orientation depend on the digit, jittered and noisy, so a
model can learn it in one epoch but not by memorising pixels.
"""

import os
import struct
import sys
from pathlib import Path

# pytest.ini runs the tests in 2 processes (pytest-xdist, `-n 2`): one thread of
# maths each, set before torch is imported, so the two never fight over the
# same cores (two 2-thread processes on 2 cores run many times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so `import dl_utils` works from any working directory

N_TRAIN = 600
N_TEST = 200


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (n, 28, 28) uint8 and labels (n,) uint8, classes 0-9 balanced."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.float32)  # faint background noise
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-1, 2, size=2)  # +-1 pixel jitter
        position = 3 + 4 * (label % 5) + dy  # 5 positions, 4 px apart ...
        if label < 5:  # ... for a horizontal bar (0-4) or a vertical one (5-9)
            images[i, position:position + 3, 5 + dx:23 + dx] = 255
        else:
            images[i, 5 + dx:23 + dx, position:position + 3] = 255
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images/labels as MNIST's big-endian IDX files (magic 2051 / 2049)."""
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28))
        f.write(images.tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)))
        f.write(labels.tobytes())


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """A data dir (pass it as --data-dir) holding a tiny synthetic MNIST."""
    root = tmp_path_factory.mktemp("tiny_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw, "train", *synthetic_digits(N_TRAIN, seed=1))
    write_idx(raw, "t10k", *synthetic_digits(N_TEST, seed=2))
    return root


@pytest.fixture(autouse=True)
def _no_real_data(monkeypatch):
    """Make sure no test silently reads $DL_DATA_DIR or downloads MNIST."""
    monkeypatch.delenv("DL_DATA_DIR", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")


def load_script(name: str):
    """Import a numbered lesson (e.g. "03_train_mnist") as a module: tests may, the course never does.

    `import 03_train_mnist` is a syntax error (a name cannot start with a
    digit), so importlib loads the file; its main() does not run.
    """
    import importlib.util

    module_name = "lesson_" + name
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def learner_photo(data, index: int, path: Path, *, size: int = 200, mode: str = "L") -> Path:
    """Test image `index` of `data` (dl_utils.load_mnist_data) saved as a learner's picture at `path`.

    Dark ink on light paper (MNIST inverted), scaled up to size x size pixels,
    greyscale ("L") or colour (mode="RGB"); the format follows the file name.
    Its true label is data.test_loader.labels[index].
    """
    from PIL import Image

    pixels = (data.test_loader.images[index, 0] * data.std + data.mean).clamp(0, 1).numpy()  # undo the normalisation
    Image.fromarray((255 - 255 * pixels).astype("uint8")).resize((size, size)).convert(mode).save(path)
    return path


def assert_png(path, min_width: int = 400, min_height: int = 0) -> None:
    """`path` is a real PNG of at least this size with something drawn in it."""
    import matplotlib.image

    image = matplotlib.image.imread(path)  # fails if the file is not a valid PNG
    assert image.shape[1] >= min_width and image.shape[0] >= min_height, f"{path} is only {image.shape}"
    assert image.std() > 0.01, f"{path} looks empty"


class _ParserReady(Exception):
    """Raised instead of parsing, to hand a lesson's parser back (see lesson_parser)."""


def lesson_parser(name: str):
    """A lesson's argparse parser, as its main() builds it, without running the lesson.

    Every lesson's main() builds its parser from its settings block and hands it
    to dl_utils.parse_args first thing; we stop it there.
    """
    import dl_utils

    module, original = load_script(name), dl_utils.parse_args

    def hand_back(parser, argv=None):
        raise _ParserReady(parser)

    dl_utils.parse_args = hand_back
    try:
        module.main([])
    except _ParserReady as ready:
        return ready.args[0]
    finally:
        dl_utils.parse_args = original
    raise AssertionError(f"{name}.main() never called dl_utils.parse_args")
