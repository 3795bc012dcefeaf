"""Does "use your own picture" work? A check on real MNIST with learner-like pictures.

04_load_model.py --image and 06_cnn_mnist.py --image feed a learner's own
picture through dl_utils.prepare_digit_image (written in course/own_digit.py).
This script makes pictures that look like what learners produce, and checks
the MLP from 03 still reads them:

  * real MNIST TEST digits (never trained on) turned into "photos": scaled up
    to 300-1000 pixels, dark ink on light or grey paper (or chalk on a dark
    board), off-centre on a larger page, uneven lighting, a thicker pen,
    blur, sensor noise, colour, JPEG compression;
  * digits drawn from scratch with PIL's ImageDraw, like a mouse drawing in a
    paint program: round brush strokes on a white canvas, one transparent PNG.

Each picture is saved in <out-dir>/own_digits/ (default outputs/), read back
from disk, prepared and classified by every --model given (03's MLP, 06's CNN,
06's CNN trained with --augment: any checkpoint of the course). With --seeds N
it draws N different sets of 30 pictures. It prints a table (first set) and
each model's accuracy, writes <out-dir>/own_digits.json, and exits with status
1 if a model scores below --min-accuracy (90%). own_digits/overview.png shows
the first set next to the 28x28 the first model saw.

Run it (from the repository root; 15-20 s per set of 30 pictures on a 2-core CPU)
    python 03_train_mnist.py --data-dir DATA_DIR     # makes outputs/mnist_model.pth, if missing
    python benchmarks/own_digits.py --data-dir DATA_DIR
    # does augmentation help on pictures that are not MNIST? Train both CNNs, then compare:
    python 06_cnn_mnist.py --data-dir DATA_DIR --out-dir outputs/cnn
    python 06_cnn_mnist.py --data-dir DATA_DIR --out-dir outputs/cnn_augment --augment
    python benchmarks/own_digits.py --data-dir DATA_DIR --seeds 10 \
        --model outputs/mnist_model.pth outputs/cnn/cnn_model.pth outputs/cnn_augment/cnn_model.pth
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
from benchmarks.digit_strokes import STROKES  # noqa: E402

SEED = 0
N_MNIST = 20  # MNIST test digits turned into photos: 2 of each class
MIN_ACCURACY = 0.90


# ---------------------------------------------------------------------------
# Pictures from real MNIST test digits
# ---------------------------------------------------------------------------
def mnist_photo(digit: np.ndarray, rng: np.random.Generator, *, degrees: float = 0.0) -> tuple[Image.Image, str]:
    """One 28x28 uint8 MNIST digit -> a learner-like photo (PIL image) and a short description.

    `degrees` turns the digit (not the page): handwriting that slants.
    """
    size = int(rng.integers(300, 1001))  # the 28x28 digit becomes size x size pixels
    notes = [f"{size}px"]
    # Pen width: grow or shrink the strokes at 5x (140 px), where a 3x3 or 5x5
    # max/min filter is cheap, then scale up to the final size.
    ink = Image.fromarray(digit).resize((140, 140), Image.Resampling.BICUBIC)
    if degrees:  # turned inside its square, so the page layout below stays the same
        ink = ink.rotate(degrees, resample=Image.Resampling.BICUBIC)
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
def drawn_digit(label: int, rng: np.random.Generator, *, transparent: bool = False,
                degrees: float = 0.0) -> tuple[Image.Image, str]:
    """A digit drawn with a round brush on a white (or transparent) canvas, slanted by `degrees`."""
    width, height = int(rng.integers(300, 801)), int(rng.integers(300, 601))
    aspect = rng.uniform(0.75, 1.05)  # some writers draw wide, some narrow
    digit_height = rng.uniform(0.45, 0.85) * min(height, width / aspect)
    x0 = rng.uniform(0, width - aspect * digit_height)
    y0 = rng.uniform(0, height - digit_height)
    brush = max(3, int(digit_height * rng.uniform(0.06, 0.14)))
    ink = tuple(int(c) for c in rng.choice([(0, 0, 0), (20, 30, 140), (150, 20, 20)]))
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 0 if transparent else 255))
    draw = ImageDraw.Draw(canvas)
    # Turned about the centre of its box, and shrunk just enough to stay inside it.
    cx, cy = x0 + aspect * digit_height / 2, y0 + digit_height / 2
    cos, sin = math.cos(math.radians(-degrees)), math.sin(math.radians(-degrees))
    shrink = 1 / (abs(cos) + abs(sin)) if degrees else 1.0
    for stroke in STROKES[label]:
        jitter = rng.normal(0, 0.01, (len(stroke), 2))  # a hand is never perfectly steady
        points = [((x + dx - 0.5) * aspect * digit_height, (y + dy - 0.5) * digit_height)
                  for (x, y), (dx, dy) in zip(stroke, jitter)]
        points = [(cx + shrink * (cos * x - sin * y), cy + shrink * (sin * x + cos * y)) for x, y in points]
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
    parser.add_argument("--model", type=Path, nargs="+", default=[dl_utils.DEFAULT_OUT_DIR / "mnist_model.pth"],
                        help="checkpoints written by 03 or 06, compared on the same pictures "
                             "(default: outputs/mnist_model.pth)")
    parser.add_argument("--out-dir", type=Path, default=dl_utils.DEFAULT_OUT_DIR,
                        help="own_digits.json and the pictures (in own_digits/) go here (default: outputs/)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="which digits and which distortions (default: %(default)s)")
    parser.add_argument("--seeds", type=dl_utils.positive_int, default=1,
                        help="how many sets of 30 pictures, seeds --seed, --seed+1, ... (default: %(default)s)")
    parser.add_argument("--tilt", type=float, default=0.0,
                        help="also turn every digit by a random angle up to this many degrees, "
                             "like slanted handwriting (default: %(default)s)")
    parser.add_argument("--min-accuracy", type=float, default=MIN_ACCURACY,
                        help="exit with status 1 if a model scores below this (default: %(default)s)")
    return parser


def make_pictures(folder: Path, data_dir, rng: np.random.Generator, *, tilt: float = 0.0,
                  tilt_rng: np.random.Generator | None = None) -> list[tuple[Path, int, str]]:
    """Write every test picture into `folder`; returns (file, true label, description) for each.

    With `tilt`, every digit is also turned by a random angle in [-tilt, tilt]
    degrees (slanted handwriting), drawn from `tilt_rng` so that everything
    else about the pictures stays as without it: only the angle differs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = dl_utils.read_mnist(data_dir, train=False, download=False)
    images, labels = images.numpy(), labels.numpy()
    made = []

    def slant() -> float:
        return float(tilt_rng.uniform(-tilt, tilt)) if tilt else 0.0

    for i in range(N_MNIST):
        label = i % 10
        index = int(rng.choice(np.flatnonzero(labels == label)))
        degrees = slant()
        picture, notes = mnist_photo(images[index], rng, degrees=degrees)
        notes += f", turned {degrees:+.0f} deg" if tilt else ""
        fmt = "jpg" if rng.random() < 0.75 else "png"
        path = folder / f"mnist{index:05d}_{label}.{fmt}"
        picture.save(path, quality=int(rng.integers(50, 91))) if fmt == "jpg" else picture.save(path)
        made.append((path, label, f"MNIST test #{index}, {notes}, {fmt.upper()}"))
    for label in range(10):
        transparent = label == 4
        degrees = slant()
        picture, notes = drawn_digit(label, rng, transparent=transparent, degrees=degrees)
        notes += f", turned {degrees:+.0f} deg" if tilt else ""
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


def load_model(path: Path) -> tuple[torch.nn.Module, dict, str]:
    """Rebuild the network a course checkpoint was trained as; returns (model, checkpoint, short name)."""
    checkpoint = dl_utils.load_checkpoint(path)
    # The toolbox knows both classes (03's SimpleNN and 06's CNN) and builds the one "arch" names, as 04 teaches.
    model = dl_utils.build_model(checkpoint) if checkpoint["arch"] in ("SimpleNN", "CNN") else None
    if model is None or dl_utils.state_dict_mismatches(model, checkpoint["state_dict"]):
        raise dl_utils.CourseError(f"{path} holds a {checkpoint['arch']} this check cannot rebuild; it reads the "
                                   "checkpoints of 03_train_mnist.py and 06_cnn_mnist.py.")
    model.load_state_dict(checkpoint["state_dict"])
    name = "MLP" if checkpoint["arch"] == "SimpleNN" else "CNN"
    if checkpoint["hyperparameters"].get("augment"):
        name += "-aug"  # trained with 06 --augment
    return model.eval(), checkpoint, name


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    pictures = args.out_dir / "own_digits"
    models = [load_model(path) for path in args.model]
    names = [name for _, _, name in models]
    if len(set(names)) < len(names):  # two checkpoints of the same kind: number them
        names = [f"{name}#{i + 1}" for i, name in enumerate(names)]
    normalizations = {str(c["normalization"]) for _, c, _ in models}
    if len(normalizations) > 1:
        print("Note: the checkpoints were trained with different normalisations; each model gets its own.")

    scores = {name: {"mnist": 0, "drawn": 0} for name in names}
    counts = {"mnist": 0, "drawn": 0}
    first_rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        made = make_pictures(pictures, args.data_dir, np.random.default_rng(seed), tilt=args.tilt,
                             tilt_rng=np.random.default_rng([seed, 1]))
        if seed == args.seed:
            print(f"{'file':22s} {'true':>4s} " + " ".join(f"{name:>13s}" for name in names) + "  picture")
        for path, label, notes in made:
            kind = "drawn" if path.name.startswith("drawn") else "mnist"
            counts[kind] += 1
            cells, prepared = [], {}
            for (model, checkpoint, _), name in zip(models, names):
                key = tuple(sorted(checkpoint["normalization"].items()))  # prepare once per normalisation
                if key not in prepared:
                    prepared[key] = dl_utils.prepare_digit_image(path, **checkpoint["normalization"])
                original, digit28, tensor = prepared[key]
                probabilities = dl_utils.predict_digit(model, tensor, device="cpu")
                predicted = int(probabilities.argmax())
                scores[name][kind] += predicted == label
                cells.append(f"{predicted} ({100 * probabilities.max():3.0f}%)" + ("!" if predicted != label else " "))
                if seed == args.seed and name == names[0]:
                    first_rows.append({"file": path.name, "true": label, "predicted": predicted,
                                       "confidence": float(probabilities.max()), "original": original,
                                       "digit28": digit28})
            if seed == args.seed:
                print(f"{path.name:22s} {label:4d} " + " ".join(f"{cell:>13s}" for cell in cells) + f"  {notes}")
    overview = plot_overview(first_rows, pictures / "overview.png")

    total = counts["mnist"] + counts["drawn"]
    print(f"\n{args.seeds} set{'s' if args.seeds > 1 else ''} of 30 pictures ({counts['mnist']} MNIST test digits "
          f"made into photos, {counts['drawn']} drawn" + (f", each tilted up to {args.tilt:g} degrees" if args.tilt else "")
          + "); '!' marks a mistake in the table above (first set)")
    print(f"{'model':10s} {'test acc':>8s}  {'all pictures':>16s}  {'photos':>9s}  {'drawn':>7s}  checkpoint")
    results = {"seeds": list(range(args.seed, args.seed + args.seeds)), "tilt": args.tilt, "pictures": total,
               "mnist_pictures": counts["mnist"], "drawn_pictures": counts["drawn"], "models": {}}
    failed = []
    for (model, checkpoint, _), name, path in zip(models, names, args.model):
        correct = scores[name]["mnist"] + scores[name]["drawn"]
        accuracy = correct / total
        test_accuracy = checkpoint["metrics"]["test_accuracy"]
        print(f"{name:10s} {100 * test_accuracy:7.2f}%  {correct:4d}/{total:<4d} {100 * accuracy:5.1f}%  "
              f"{scores[name]['mnist']:4d}/{counts['mnist']:<4d} {scores[name]['drawn']:3d}/{counts['drawn']:<3d}  {path}")
        results["models"][name] = {"checkpoint": str(path), "arch": checkpoint["arch"],
                                   "hyperparameters": checkpoint["hyperparameters"], "test_accuracy": test_accuracy,
                                   "correct": correct, "accuracy": accuracy, "mnist_correct": scores[name]["mnist"],
                                   "drawn_correct": scores[name]["drawn"]}
        if accuracy < args.min_accuracy:
            failed.append(name)
    results["seconds"] = time.perf_counter() - start
    dl_utils.save_results(args.out_dir, "own_digits", results)
    print(f"{results['seconds']:.1f}s; own_digits.json in {args.out_dir}, the first set of pictures and "
          f"{overview.name} in {pictures}")
    if failed:
        print(f"FAILED: {', '.join(failed)} below {100 * args.min_accuracy:.0f}%", file=sys.stderr)
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
