"""Tests for "use your own picture": dl_utils.prepare_digit_image and friends (course/own_digit.py).

No real MNIST here. The digits are drawn with PIL from a few strokes each,
then either put into MNIST's format directly (the training data of a small
model) or dressed up as a learner's picture: scaled up, dark on light grey
paper, off-centre, uneven light, colour, noise, JPEG. prepare_digit_image must
turn the learner's picture back into the MNIST-like digit.
"""


import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

import dl_utils
from benchmarks.digit_strokes import STROKES  # the strokes benchmarks/own_digits.py draws too
from conftest import load_script

MEAN, STD = 0.1307, 0.3081  # any statistics work; these are MNIST's


def draw_digit(label, height, *, aspect=0.75, pen=0.12, rng=None) -> np.ndarray:
    """White strokes on black, float in [0, 1], the digit filling a (height, aspect*height) box."""
    width = max(1, round(aspect * height))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    brush = max(1, round(pen * height))
    for stroke in STROKES[label]:
        jitter = rng.normal(0, 0.02, (len(stroke), 2)) if rng is not None else np.zeros((len(stroke), 2))
        points = [((x + dx) * (width - brush) + brush / 2, (y + dy) * (height - brush) + brush / 2)
                  for (x, y), (dx, dy) in zip(stroke, jitter)]
        draw.line(points, fill=255, width=brush, joint="curve")
    return np.asarray(canvas, dtype=np.float64) / 255.0


def mnist_style(label, rng=None) -> np.ndarray:
    """MNIST's recipe, written out independently: a 20-pixel digit, centre of mass at (14, 14)."""
    aspect = rng.uniform(0.6, 0.9) if rng is not None else 0.75
    pen = rng.uniform(0.09, 0.16) if rng is not None else 0.12
    big = Image.fromarray((draw_digit(label, 80, aspect=aspect, pen=pen, rng=rng) * 255).astype(np.uint8))
    big = big.crop(big.getbbox())  # the ink's bounding box ...
    scale = 20 / max(big.size)  # ... scaled so its longest side is 20 pixels
    small = big.resize((max(1, round(big.width * scale)), max(1, round(big.height * scale))), Image.Resampling.BOX)
    small = np.asarray(small, dtype=np.float64) / 255
    row, col = dl_utils.center_of_mass(small)
    top, left = round(14 - row), round(14 - col)
    image = np.zeros((28, 28))
    image[top:top + small.shape[0], left:left + small.shape[1]] = small
    return image


def learner_picture(digit: np.ndarray, path, rng, *, dark_on_light=True, scale=12, rgb=True, fmt="JPEG",
                    shade=0.25):
    """A digit (white on black) as a learner might save it: big, off-centre, on grey paper, shaded, noisy."""
    ink = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize(
        (digit.shape[1] * scale, digit.shape[0] * scale), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    height, width = int(ink.shape[0] * 1.8), int(ink.shape[1] * 2.2)
    top, left = int(rng.integers(0, height - ink.shape[0])), int(rng.integers(0, width - ink.shape[1]))
    page = np.zeros((height, width))
    page[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    paper, pen = (0.78, 0.15) if dark_on_light else (0.2, 0.9)  # light grey paper, or a dark board
    grey = paper + (pen - paper) * page
    grey *= 1 - shade * np.linspace(0, 1, width)[None, :]  # uneven light: darker to the right
    grey += rng.normal(0, 0.02, grey.shape)  # sensor noise
    pixels = grey[..., None] * np.array([1.0, 0.96, 0.88]) if rgb else grey  # a warm lamp
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    image.save(path, format=fmt, **({"quality": 70} if fmt == "JPEG" else {}))
    return path


def bounding_box_size(image, level=0.05):
    rows, cols = np.flatnonzero((image > level).any(axis=1)), np.flatnonzero((image > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_the_pipeline_lives_in_course_and_dl_utils_reexports_it():
    """Importable first, in a fresh process (no import cycle), and dl_utils.X is the same function."""
    import subprocess
    import sys

    from conftest import REPO

    code = ("from course.own_digit import prepare_digit_image, center_of_mass; import dl_utils; "
            "assert dl_utils.prepare_digit_image is prepare_digit_image and dl_utils.center_of_mass is center_of_mass")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert dl_utils.classify_own_digit.__module__ == "course.own_digit"


# ---------------------------------------------------------------------------
# Geometry: the 28x28 comes out as MNIST would have made it
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean MNIST-style 7 and what prepare_digit_image makes of it as a 28x28 PNG."""
    digit = mnist_style(7)
    path = tmp_path_factory.mktemp("ref") / "seven.png"
    Image.fromarray((digit * 255).astype(np.uint8)).save(path)
    return digit, dl_utils.prepare_digit_image(path, mean=MEAN, std=STD)[1]


def test_a_clean_mnist_digit_comes_back_unchanged(reference):
    digit, prepared = reference
    assert correlation(prepared, digit) > 0.95
    assert max(bounding_box_size(prepared)) == 20


@pytest.mark.parametrize("style", ["dark on light grey, RGB JPEG", "in a deep shadow", "table at the edge",
                                   "light on dark, grey PNG", "tiny PNG", "transparent PNG", "rotated by EXIF"])
def test_learner_pictures_become_the_mnist_digit(style, reference, tmp_path):
    digit, clean = reference
    rng = np.random.default_rng(0)
    path = tmp_path / "mine"
    if style == "dark on light grey, RGB JPEG":
        learner_picture(digit, path, rng)
    elif style == "in a deep shadow":  # the right side of the page gets 35% of the light of the left
        learner_picture(digit, path, rng, shade=0.65)
    elif style == "table at the edge":  # the photo caught the dark table beside the page
        learner_picture(digit, tmp_path / "page.png", rng, fmt="PNG")
        photo = np.asarray(Image.open(tmp_path / "page.png")).copy()
        photo[:, :photo.shape[1] // 12] = (60, 45, 30)
        Image.fromarray(photo).save(path, format="JPEG")
    elif style == "light on dark, grey PNG":
        learner_picture(digit, path, rng, dark_on_light=False, rgb=False, fmt="PNG")
    elif style == "tiny PNG":  # smaller than MNIST itself, dark on white
        Image.fromarray(((1 - digit[2:26, 4:24]) * 255).astype(np.uint8)).resize((12, 14)).save(path, format="PNG")
    elif style == "transparent PNG":  # black strokes on a see-through canvas, as paint programs save them
        alpha = Image.fromarray((digit * 255).astype(np.uint8)).resize((280, 280), Image.Resampling.BICUBIC)
        canvas = Image.new("RGBA", (500, 400), (0, 0, 0, 0))
        canvas.paste(Image.new("RGBA", (280, 280), (0, 0, 0, 255)), (180, 20), alpha)
        canvas.save(path, format="PNG")
    else:  # a phone stores the pixels sideways plus an EXIF note "rotate 90 degrees clockwise to show me"
        learner_picture(digit, tmp_path / "upright.png", rng, fmt="PNG")
        exif = Image.Exif()
        exif[0x0112] = 6  # the Orientation tag; 6 = rotate 90 degrees clockwise
        Image.open(tmp_path / "upright.png").rotate(90, expand=True).save(path, format="JPEG", exif=exif)

    original, prepared, tensor = dl_utils.prepare_digit_image(path, mean=MEAN, std=STD)

    assert original.ndim == 2 and 0 <= original.min() and original.max() <= 1
    assert prepared.shape == (28, 28) and prepared.min() == 0 and prepared.max() == pytest.approx(1)
    row, col = dl_utils.center_of_mass(prepared)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1, "not centred by centre of mass"
    assert 19 <= max(bounding_box_size(prepared)) <= 20, "the digit's longest side should be 20 pixels"
    assert correlation(prepared, clean) > 0.8, "does not look like the original digit"
    assert tensor.shape == (1, 1, 28, 28) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[0, 0], torch.from_numpy((prepared - MEAN) / STD).float())


def test_shading_and_grey_paper_do_not_become_ink(reference, tmp_path):
    """Uneven light and grey paper must end up exactly 0 (MNIST's black) away from the strokes."""
    digit, clean = reference
    path = learner_picture(digit, tmp_path / "shaded.jpg", np.random.default_rng(1))
    prepared = dl_utils.prepare_digit_image(path, mean=MEAN, std=STD)[1]
    for corner in (prepared[:5, :5], prepared[:5, -5:], prepared[-5:, :5], prepared[-5:, -5:]):
        assert (corner == 0).all()
    assert (prepared > 0).sum() <= 1.5 * (clean > 0).sum()


def test_a_shadow_across_the_digit_dims_nothing(tmp_path):
    """Light falling from 100% to 25% across the digit: its strokes must stay equally bright."""
    digit = mnist_style(0)
    ink = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((280, 280), Image.Resampling.BICUBIC)) / 255
    light = np.linspace(1.0, 0.25, 280)[None, :]
    Image.fromarray(((0.85 - 0.6 * ink) * light * 255).astype(np.uint8)).save(tmp_path / "shadow.png")
    prepared = dl_utils.prepare_digit_image(tmp_path / "shadow.png", mean=MEAN, std=STD)[1]
    lit, shaded = prepared[:, :14], prepared[:, 14:]
    assert shaded[shaded > 0.2].mean() > 0.95 * lit[lit > 0.2].mean()  # 0.87 if we only subtracted the paper


def test_thin_pen_strokes_are_thickened_to_mnist_width(tmp_path):
    thin = draw_digit(4, 400, pen=0.015)  # a ballpoint line: 6 pixels on a 400-pixel digit
    Image.fromarray(((1 - thin) * 255).astype(np.uint8)).save(tmp_path / "thin.png")
    prepared = dl_utils.prepare_digit_image(tmp_path / "thin.png", mean=MEAN, std=STD)[1]
    # Shrunk to 20 pixels without thickening, the strokes would be 0.3 pixels: a faint grey ghost.
    assert 60 <= (prepared > 0.5).sum() <= 160, "MNIST digits have about 100 pixels above 0.5"


# ---------------------------------------------------------------------------
# A model trained on MNIST-style digits reads the learner's pictures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def glyph_model():
    """SimpleNN from 03, trained in a second on 1,000 jittered MNIST-style stroke digits."""
    rng = np.random.default_rng(0)
    labels = np.arange(1000) % 10
    images = np.stack([mnist_style(label, rng) for label in labels])
    x = torch.from_numpy((images - MEAN) / STD).float().unsqueeze(1)
    y = torch.from_numpy(labels)
    torch.manual_seed(0)
    model = load_script("03_train_mnist").SimpleNN(hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        for batch in torch.randperm(len(y)).split(100):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def test_predictions_survive_the_learner_transforms(glyph_model, tmp_path):
    rng = np.random.default_rng(1)
    naive_correct, correct, n = 0, 0, 0
    for label in range(10):
        for dark_on_light in (True, False):
            path = learner_picture(mnist_style(label, rng), tmp_path / f"{label}_{dark_on_light}.jpg", rng,
                                   dark_on_light=dark_on_light, scale=int(rng.integers(6, 13)))
            tensor = dl_utils.prepare_digit_image(path, mean=MEAN, std=STD)[2]
            probabilities = dl_utils.predict_digit(glyph_model, tensor, device="cpu")
            assert probabilities.shape == (10,) and probabilities.sum() == pytest.approx(1, abs=1e-5)
            correct += int(probabilities.argmax()) == label
            # The control: squash the whole picture to 28x28 without MNIST's recipe.
            naive = np.asarray(Image.open(path).convert("L").resize((28, 28)), dtype=np.float64) / 255
            naive = torch.from_numpy((naive - MEAN) / STD).float().reshape(1, 1, 28, 28)
            naive_correct += int(dl_utils.predict_digit(glyph_model, naive).argmax()) == label
            n += 1
    print(f"learner pictures: {correct}/{n} correct; squashed without the recipe: {naive_correct}/{n}")
    assert correct / n >= 0.9, f"only {correct}/{n} learner pictures read correctly"
    assert naive_correct / n <= 0.5, "the control should fail: without preprocessing the pictures are unreadable"


# ---------------------------------------------------------------------------
# Bad input: one clear paragraph, no traceback
# ---------------------------------------------------------------------------
def _missing(folder):
    return folder / "missing.png"


def _text_renamed_png(folder):
    (folder / "notes.png").write_text("my digit is a 7\n")
    return folder / "notes.png"


def _empty_file(folder):
    (folder / "empty.jpg").write_bytes(b"")
    return folder / "empty.jpg"


def _one_colour(value):
    def make(folder):
        Image.new("L", (300, 200), value).save(folder / "blank.png")
        return folder / "blank.png"
    return make


def _paper_noise(folder):
    noise = np.random.default_rng(0).normal(180, 10, (200, 200)).clip(0, 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    return folder / "noise.png"


NO_PICTURE = ("No picture at", "Check the spelling")
NOT_A_PICTURE = ("not a picture Pillow can read", "Save your digit as a PNG or JPEG")
BLANK = ("Found no digit", "Write the digit large and dark")


@pytest.mark.parametrize("make, expected", [
    (_missing, NO_PICTURE), (lambda folder: folder, NO_PICTURE + ("that is a folder",)),
    (_text_renamed_png, NOT_A_PICTURE), (_empty_file, NOT_A_PICTURE),
    (_one_colour(255), BLANK), (_one_colour(0), BLANK), (_one_colour(128), BLANK), (_paper_noise, BLANK),
], ids=["missing", "folder", "text renamed .png", "empty file", "white", "black", "grey", "paper noise"])
def test_bad_pictures_give_a_clear_error(make, expected, tmp_path):
    with pytest.raises(dl_utils.CourseError) as error:
        dl_utils.prepare_digit_image(make(tmp_path), mean=MEAN, std=STD)
    message = str(error.value)
    for part in expected:  # what went wrong, and what to do about it
        assert part in message


def test_a_truncated_picture_gives_a_clear_error(tmp_path):
    learner_picture(mnist_style(3), tmp_path / "full.jpg", np.random.default_rng(0))
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:3000])
    with pytest.raises(dl_utils.CourseError, match="truncated or damaged"):
        dl_utils.prepare_digit_image(tmp_path / "cut.jpg", mean=MEAN, std=STD)


# ---------------------------------------------------------------------------
# What the learner sees: the printout and the figure
# ---------------------------------------------------------------------------
def test_format_top_k():
    probabilities = torch.tensor([0.001, 0.042, 0.0, 0.005, 0.0, 0.0, 0.001, 0.931, 0.0, 0.020])
    lines = dl_utils.format_top_k(probabilities).splitlines()
    assert lines[0] == "Predicted digit: 7 (confidence 93.1%)"
    assert [line.split()[1] for line in lines[2:]] == ["7", "1", "9"]
    assert "4.2%" in lines[3]


def test_plot_digit_prediction_writes_a_picture(reference, tmp_path):
    digit, prepared = reference
    probabilities = torch.softmax(torch.arange(10.0), dim=0)
    path = dl_utils.plot_digit_prediction(np.full((300, 200), 0.8), prepared, probabilities,
                                          tmp_path / "own_digit.png", title="test")
    image = matplotlib.image.imread(path)
    assert image.shape[1] >= 800 and image.std() > 0.05


# ---------------------------------------------------------------------------
# benchmarks/own_digits.py, the real-MNIST check, run on the tiny data
# ---------------------------------------------------------------------------
def test_own_digits_benchmark_compares_checkpoints_on_the_same_pictures(tiny_mnist, tmp_path):
    """The bars of the tiny data are no digits, so only the plumbing is checked here: every model
    sees the same pictures, results land in own_digits.json, and --tilt turns the digits
    without changing which pictures are made."""
    import importlib.util
    import json

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("own_digits", REPO / "benchmarks" / "own_digits.py")
    own_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(own_digits)
    own_digits.N_MNIST = 2  # 2 photos + the 10 drawn digits: the plumbing, in a fraction of the time
    train = load_script("03_train_mnist")
    train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "mlp"), "--quick", "--hidden", "16"])
    model = str(tmp_path / "mlp" / "mnist_model.pth")

    results = own_digits.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "plain"),
                               "--model", model, model, "--min-accuracy", "0"])
    assert set(results["models"]) == {"MLP#1", "MLP#2"} and results["pictures"] == 12
    first, second = results["models"].values()
    assert first["correct"] == second["correct"] <= 12  # one checkpoint twice: the same answers
    assert first["test_accuracy"] > 0 and first["arch"] == "SimpleNN"
    saved = json.loads((tmp_path / "plain" / "own_digits.json").read_text())
    assert saved["models"]["MLP#1"]["correct"] == first["correct"]

    with pytest.raises(SystemExit) as failed:  # below --min-accuracy: a non-zero exit, for CI
        own_digits.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "tilted"), "--model", model,
                         "--tilt", "25", "--min-accuracy", "1.01"])
    assert failed.value.code == 1
    plain = sorted(p.name for p in (tmp_path / "plain" / "own_digits").glob("*") if p.name != "overview.png")
    tilted = sorted(p.name for p in (tmp_path / "tilted" / "own_digits").glob("*") if p.name != "overview.png")
    assert plain == tilted and len(plain) == 12  # the same digits were picked (a digit picked twice: one file) ...
    name = "drawn_7.png"  # ... but drawn turned
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "plain" / "own_digits" / name)),
                              np.asarray(Image.open(tmp_path / "tilted" / "own_digits" / name)))
