"""Does "use your own picture" work? A check on real MNIST with learner-like pictures.

04_load_model.py --image and 06_cnn_mnist.py --image feed a learner's own
picture through dl_utils.prepare_digit_image. This script makes pictures that
look like what learners produce, and checks the MLP from 03 still reads them:

  * real MNIST TEST digits (never trained on) turned into "photos": scaled up
    to 300-1000 pixels, dark ink on light or grey paper (or chalk on a dark
    board), off-centre on a larger page, uneven lighting, a thicker pen,
    blur, sensor noise, colour, JPEG compression;
  * digits drawn from scratch with PIL's ImageDraw, like a mouse drawing in a
    paint program: round brush strokes on a white canvas, one transparent PNG.

Each picture is saved in --pictures (default outputs/own_digits/), read back
from disk, prepared and classified; the script prints a table and the
accuracy and exits with status 1 below --min-accuracy (90%). overview.png
shows every picture next to the 28x28 the network saw.

Run it (from the repository root; 15-20 s on a 2-core CPU, most of it importing torch and drawing)
    python 03_train_mnist.py --data-dir ../shared/data     # makes outputs/mnist_model.pth, if missing
    python benchmarks/own_digits.py --data-dir ../shared/data
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import dl_utils from the repository root
import dl_utils  # noqa: E402

SEED = 0
N_MNIST = 20  # MNIST test digits turned into photos: 2 of each class
MIN_ACCURACY = 0.90


# ---------------------------------------------------------------------------
# Pictures from real MNIST test digits
# ---------------------------------------------------------------------------
def mnist_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One 28x28 uint8 MNIST digit -> a learner-like photo (PIL image) and a short description."""
    size = int(rng.integers(300, 1001))  # the 28x28 digit becomes size x size pixels
    notes = [f"{size}px"]
    # Pen width: grow or shrink the strokes at 5x (140 px), where a 3x3 or 5x5
    # max/min filter is cheap, then scale up to the final size.
    ink = Image.fromarray(digit).resize((140, 140), Image.Resampling.BICUBIC)
    pen = rng.choice(["as written", "thick pen", "thin pen"], p=[0.4, 0.3, 0.3])
    if pen == "thick pen":  # a marker: strokes a few percent of the digit wider
        ink = ink.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5, 7]))))
    elif pen == "thin pen":  # a ballpoint: strokes about half as wide as MNIST's
        ink = ink.filter(ImageFilter.MinFilter(int(rng.choice([3, 5]))))
    if pen != "as written":
        notes.append(pen)
    ink = np.asarray(ink.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0

    # A larger page, digit off-centre on it.
    height, width = (int(size * rng.uniform(1.15, 2.2)) for _ in range(2))
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    page_ink = np.zeros((height, width), dtype=np.float32)
    page_ink[top:top + size, left:left + size] = ink

    dark_board, pencil = rng.random() < 0.25, False  # chalk or white pen on a dark surface: no inversion needed
    if dark_board:
        paper, pen_colour = rng.uniform(0.08, 0.3), rng.uniform(0.75, 0.95)
        notes.append("light on dark")
    else:
        paper = rng.uniform(0.6, 0.95)  # white to grey paper
        pencil = bool(rng.random() < 0.25)  # a pencil: grey, not black
        pen_colour = paper - rng.uniform(0.25, 0.35) if pencil else rng.uniform(0.05, 0.3)
        notes.append(f"{'pencil' if pencil else 'dark'} {pen_colour:.2f} on paper {paper:.2f}")
    grey = paper * (1 - page_ink) + pen_colour * page_ink
    # Uneven lighting: up to 35% darker on one side, in a random direction.
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.arange(height)[:, None] / height, np.arange(width)[None, :] / width
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys).astype(np.float32)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)
    shade = rng.uniform(0.0, 0.4)
    grey = grey * (1 - shade * ramp)
    notes.append(f"shade {shade:.2f}")

    colour = rng.random() < 0.7
    if colour:  # a warm lamp on the paper, a blue or black pen
        tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 0.95)])
        rgb = grey[..., None] * tint
        if not dark_board and not pencil and rng.random() < 0.5:
            blue = np.array([0.15, 0.2, 0.55])
            rgb = rgb * (1 - page_ink[..., None]) + blue * page_ink[..., None] * (1 - shade * ramp[..., None])
            notes.append("blue pen")
        pixels = rgb
    else:
        pixels = grey
    pixels = pixels + rng.normal(0, rng.uniform(0.01, 0.04), pixels.shape).astype(np.float32)  # sensor noise
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    blur = rng.uniform(0.5, 2.5) * size / 500  # a slightly out-of-focus camera
    image = image.filter(ImageFilter.GaussianBlur(blur))
    notes.append("RGB" if colour else "grey")
    return image, ", ".join(notes)


# ---------------------------------------------------------------------------
# Digits drawn from scratch, like a mouse in a paint program
# ---------------------------------------------------------------------------
def _arc(cx, cy, rx, ry, start, end, steps=40):
    """Points on an ellipse; angles in degrees, clockwise on screen (y points down)."""
    return [(cx + rx * math.cos(math.radians(t)), cy + ry * math.sin(math.radians(t)))
            for t in np.linspace(start, end, steps)]


# Each digit: strokes in a unit box (x right, y down), each a list of points.
STROKES = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, 0, 360)],
    1: [[(0.58, 0.05), (0.45, 0.95)]],
    2: [_arc(0.5, 0.3, 0.27, 0.25, 190, 385) + [(0.2, 0.95), (0.82, 0.95)]],
    3: [_arc(0.48, 0.27, 0.25, 0.22, 200, 450) + _arc(0.48, 0.72, 0.28, 0.23, 270, 520)],
    4: [[(0.22, 0.05), (0.15, 0.6), (0.85, 0.6)], [(0.68, 0.3), (0.66, 0.95)]],
    5: [[(0.78, 0.05), (0.32, 0.05), (0.27, 0.45)] + _arc(0.48, 0.69, 0.3, 0.26, 215, 500)],
    6: [[(0.68, 0.05), (0.42, 0.3)] + _arc(0.5, 0.7, 0.27, 0.25, 200, 560)],
    7: [[(0.15, 0.07), (0.85, 0.07), (0.4, 0.95)]],
    8: [_arc(0.5, 0.26, 0.22, 0.21, 0, 360), _arc(0.5, 0.72, 0.27, 0.23, 0, 360)],
    9: [_arc(0.48, 0.3, 0.26, 0.25, 0, 360), [(0.74, 0.3), (0.68, 0.95)]],
}


def drawn_digit(label: int, rng: np.random.Generator, *, transparent: bool = False) -> tuple[Image.Image, str]:
    """A digit drawn with a round brush on a white (or transparent) canvas."""
    width, height = int(rng.integers(300, 801)), int(rng.integers(300, 601))
    aspect = rng.uniform(0.75, 1.05)  # some writers draw wide, some narrow
    digit_height = rng.uniform(0.45, 0.85) * min(height, width / aspect)
    x0 = rng.uniform(0, width - aspect * digit_height)
    y0 = rng.uniform(0, height - digit_height)
    brush = max(3, int(digit_height * rng.uniform(0.06, 0.14)))
    ink = tuple(int(c) for c in rng.choice([(0, 0, 0), (20, 30, 140), (150, 20, 20)]))
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 0 if transparent else 255))
    draw = ImageDraw.Draw(canvas)
    for stroke in STROKES[label]:
        jitter = rng.normal(0, 0.01, (len(stroke), 2))  # a hand is never perfectly steady
        points = [(x0 + (x + dx) * aspect * digit_height, y0 + (y + dy) * digit_height)
                  for (x, y), (dx, dy) in zip(stroke, jitter)]
        draw.line(points, fill=ink + (255,), width=brush, joint="curve")
        for x, y in (points[0], points[-1]):  # round brush ends
            draw.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill=ink + (255,))
    if not transparent:
        canvas = canvas.convert("RGB")
    return canvas, f"drawn, {width}x{height}, brush {brush}px" + (", transparent PNG" if transparent else "")


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Own-picture accuracy of the MLP from 03 on learner-like pictures.")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding MNIST/raw/")
    parser.add_argument("--model", type=Path, default=dl_utils.DEFAULT_OUT_DIR / "mnist_model.pth",
                        help="checkpoint written by 03_train_mnist.py (default: %(default)s)")
    parser.add_argument("--pictures", type=Path, default=dl_utils.DEFAULT_OUT_DIR / "own_digits",
                        help="where the pictures and overview.png go (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="which digits and which distortions (default: %(default)s)")
    parser.add_argument("--min-accuracy", type=float, default=MIN_ACCURACY,
                        help="exit with status 1 below this accuracy (default: %(default)s)")
    return parser


def make_pictures(folder: Path, data_dir, rng: np.random.Generator) -> list[tuple[Path, int, str]]:
    """Write every test picture into `folder`; returns (file, true label, description) for each."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = dl_utils.read_mnist(data_dir, train=False, download=False)
    images, labels = images.numpy(), labels.numpy()
    made = []
    for i in range(N_MNIST):
        label = i % 10
        index = int(rng.choice(np.flatnonzero(labels == label)))
        picture, notes = mnist_photo(images[index], rng)
        fmt = "jpg" if rng.random() < 0.75 else "png"
        path = folder / f"mnist{index:05d}_{label}.{fmt}"
        picture.save(path, quality=int(rng.integers(50, 91))) if fmt == "jpg" else picture.save(path)
        made.append((path, label, f"MNIST test #{index}, {notes}, {fmt.upper()}"))
    for label in range(10):
        transparent = label == 4
        picture, notes = drawn_digit(label, rng, transparent=transparent)
        path = folder / f"drawn_{label}.png"
        picture.save(path)
        made.append((path, label, notes))
    return made


def plot_overview(rows: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    columns = 6  # three (picture, 28x28) pairs per row
    n_rows = math.ceil(len(rows) / (columns // 2))
    fig, axes = plt.subplots(n_rows, columns, figsize=(2 * columns, 2.1 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        ax_pic, ax_28 = axes.flat[2 * i], axes.flat[2 * i + 1]
        thumbnail = Image.fromarray(row["original"].astype(np.float32))
        thumbnail.thumbnail((200, 200))  # drawing 30 full-size pictures would take seconds
        ax_pic.imshow(np.asarray(thumbnail), cmap="gray", vmin=0, vmax=1)
        ax_pic.set_title(row["file"], fontsize=7)
        ax_28.imshow(row["digit28"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ok = row["predicted"] == row["true"]
        ax_28.set_title(f"true {row['true']} pred {row['predicted']} ({100 * row['confidence']:.0f}%)",
                        fontsize=8, color="tab:green" if ok else "tab:red")
    return dl_utils.finish_figure(fig, path)


def main(argv=None) -> float:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    checkpoint = dl_utils.load_checkpoint(args.model)
    SimpleNN = dl_utils.import_script("03_train_mnist").SimpleNN
    config = checkpoint["model_config"]
    model = SimpleNN(hidden=config["hidden"], batch_norm=config.get("batch_norm", False))
    model.load_state_dict(checkpoint["state_dict"])
    normalization = checkpoint["normalization"]

    made = make_pictures(args.pictures, args.data_dir, np.random.default_rng(args.seed))
    rows = []
    print(f"{'file':22s} {'true':>4s} {'pred':>4s} {'conf':>6s}  picture")
    for path, label, notes in made:
        original, digit28, tensor = dl_utils.prepare_digit_image(path, **normalization)
        probabilities = dl_utils.predict_digit(model, tensor, device="cpu")
        predicted = int(probabilities.argmax())
        rows.append({"file": path.name, "true": label, "predicted": predicted,
                     "confidence": float(probabilities.max()), "original": original, "digit28": digit28})
        mark = "" if predicted == label else "  <- wrong"
        print(f"{path.name:22s} {label:4d} {predicted:4d} {100 * probabilities.max():5.1f}%  {notes}{mark}")
    correct = sum(row["predicted"] == row["true"] for row in rows)
    accuracy = correct / len(rows)
    n_drawn = sum(row["file"].startswith("drawn") for row in rows)
    drawn_correct = sum(row["predicted"] == row["true"] for row in rows if row["file"].startswith("drawn"))
    overview = plot_overview(rows, args.pictures / "overview.png")
    print(f"\nAccuracy: {correct}/{len(rows)} = {100 * accuracy:.1f}% "
          f"(MNIST photos {correct - drawn_correct}/{len(rows) - n_drawn}, drawn {drawn_correct}/{n_drawn}); "
          f"model test accuracy {100 * checkpoint['metrics']['test_accuracy']:.2f}%; "
          f"{time.perf_counter() - start:.1f}s; pictures and {overview.name} in {args.pictures}")
    if accuracy < args.min_accuracy:
        print(f"FAILED: below {100 * args.min_accuracy:.0f}%", file=sys.stderr)
        sys.exit(1)
    return accuracy


if __name__ == "__main__":
    main()
