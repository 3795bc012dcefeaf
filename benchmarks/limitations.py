"""What the course's two models cannot do, measured: inverted colours, off-centre digits, letters, noise.

03's MLP and 06's CNN learned MNIST: white digits on black, 20 pixels tall, centred by their centre of mass
in 28x28. For both, this records accuracy and confidence (the largest softmax probability) on the 10,000
test images as they are, inverted (1 - pixel) and shifted 2, 4 and 6 pixels right and down (no
re-centring); which digit each says, and how sure, for capital letters (Pillow's default font, prepared as
04 --image prepares a picture), random noise and a blank image; and, for colour and other sizes, the
errors such inputs raise. It trains both models (03's and 06's defaults, seed 0: 1 to 3 minutes on a
2-core CPU), or loads the checkpoints given with --mlp and --cnn.

Run it (from the repository root)
    python benchmarks/limitations.py --data-dir DATA_DIR
    python benchmarks/limitations.py --data-dir DATA_DIR --mlp outputs/mnist_model.pth --cnn outputs/cnn_model.pth

Writes (in --out-dir, default outputs/): limitations.json (every number, the settings, the machine;
LEARNING_GUIDE.md quotes it) and limitations.png (the letters and one changed test digit with each
model's answer, accuracy against the shift, mean confidences).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import dl_utils from the repository root
import dl_utils  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (after dl_utils, which picks the file-only backend)

LETTERS = ["A", "B", "C", "E", "H", "K", "M", "R", "X", "Z"]
SHIFTS = [2, 4, 6]  # pixels right and down: an MNIST digit's 20-pixel box leaves a margin of about 4
NOISE_IMAGES = 1000
SEED = 0
MODELS = ("mlp", "cnn")


# --- The models: 03's and 06's default recipes, or their checkpoints ---
def train_mlp(data, device):
    """03's defaults: SimpleNN (784 -> 128 -> 10), 10 epochs of Adam at lr 0.001, batch 64."""
    dl_utils.set_seed(SEED)
    model = dl_utils.SimpleNN(hidden=128).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=dl_utils.fused_adam_works(device))
    dl_utils.fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(), optimizer, epochs=10)
    return model


def train_cnn(data, device):
    """06's defaults: CNN, 2 epochs of Adam with OneCycle to a peak lr of 0.007, batch 128, label smoothing 0.05."""
    dl_utils.set_seed(SEED)
    model = dl_utils.CNN(dropout=0.25).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # same maths, faster on a CPU (docs/PERFORMANCE.md)
    loader = dl_utils.InMemoryLoader(data.train_loader.images, data.train_loader.labels, batch_size=128,
                                     shuffle=True, seed=SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=7e-3, fused=dl_utils.fused_adam_works(device))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=7e-3, epochs=2, steps_per_epoch=len(loader))
    optimizer.register_step_post_hook(lambda *_: scheduler.step())  # 06's one extra line: a schedule step per batch
    dl_utils.fit(model, loader, data.val_loader, nn.CrossEntropyLoss(label_smoothing=0.05), optimizer, epochs=2)
    return model


def load_model(path: Path, device, made_by: str):
    """A course checkpoint (03's or 06's): the rebuilt network and the normalisation its inputs need."""
    checkpoint = dl_utils.load_checkpoint(path, made_by=made_by)
    model = dl_utils.build_model(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device), checkpoint["normalization"]


# --- The pictures: pixels in [0, 1], (N, 1, 28, 28), changed BEFORE normalising ---
def invert(pixels: torch.Tensor) -> torch.Tensor:
    """Black ink on white paper: every pixel p becomes 1 - p."""
    return 1.0 - pixels


def shift(pixels: torch.Tensor, k: int) -> torch.Tensor:
    """Every image moved k pixels right and k down; black comes in, ink pushed past the edge is lost."""
    moved = torch.zeros_like(pixels)
    moved[..., k:, k:] = pixels[..., :pixels.shape[-2] - k, :pixels.shape[-1] - k]
    return moved


def render_letter(letter: str, size: int = 160) -> torch.Tensor:
    """A letter drawn dark on white in Pillow's own font, then prepared as 04 --image prepares a picture
    (course/own_digit.py: inverted, MNIST's pen width, longest side 20 px, centred by centre of mass in 28x28).
    Returns (1, 28, 28) in [0, 1]."""
    try:
        font, enlarge = ImageFont.load_default(size=size), 1
    except TypeError:  # Pillow < 10.1: only the small bitmap font
        font, enlarge = ImageFont.load_default(), 16
    left, top, right, bottom = font.getbbox(letter)
    margin = (bottom - top) // 2
    picture = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(picture).text((margin - left, margin - top), letter, font=font, fill=0)
    picture = picture.resize((picture.width * enlarge, picture.height * enlarge), Image.Resampling.NEAREST)
    with tempfile.TemporaryDirectory() as folder:
        picture.save(Path(folder) / "letter.png")
        _, digit28, _ = dl_utils.prepare_digit_image(Path(folder) / "letter.png", mean=0.0, std=1.0)
    return torch.from_numpy(digit28).float().unsqueeze(0)


# --- What a model says, and how sure ---
def predict(model, pixels: torch.Tensor, normalization: dict, device) -> torch.Tensor:
    """Softmax probabilities (N, 10) for pixels (N, 1, 28, 28), normalised as the model's training images were."""
    model.eval()  # dropout off
    with torch.inference_mode():
        return torch.cat([torch.softmax(model(((batch - normalization["mean"]) / normalization["std"]).to(device)),
                                        dim=1).cpu() for batch in pixels.split(dl_utils.EVAL_BATCH_SIZE)])


def summarize(probabilities: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
    """Accuracy (given labels), mean confidence, and the answer given most often with its share."""
    confidence, answer = probabilities.max(dim=1)
    counts, n = torch.bincount(answer, minlength=10), len(answer)
    result = {"mean_confidence": float(confidence.mean()), "share_above_90_percent": int((confidence > 0.9).sum()) / n,
              "most_common_answer": int(counts.argmax()), "most_common_share": int(counts.max()) / n,
              "answers": counts.tolist()}  # how many images got each digit, 0 to 9
    if labels is not None:
        wrong = answer != labels
        result = {"accuracy": (n - int(wrong.sum())) / n, **result,
                  "mean_confidence_when_wrong": float(confidence[wrong].mean()) if wrong.any() else None}
    return result


def answer(probabilities: torch.Tensor) -> dict:
    """One picture's answer: the digit with the largest probability, and that probability."""
    return {"says": int(probabilities.argmax()), "confidence": float(probabilities.max())}


def shape_facts(models: dict, device) -> dict:
    """Colour and other sizes, answered without a run: the errors such inputs raise, caught."""
    def error(model, shape):
        try:
            model.eval()(torch.zeros(shape, device=device))
            return "no error"
        except RuntimeError as raised:
            return f"{type(raised).__name__}: {str(raised).splitlines()[0]}"

    return {"input_shape": [None, 1, 28, 28],  # (B images, 1 channel: grey, 28 rows, 28 columns)
            "colour": "One grey channel only: a colour picture is made grey first, as 04 --image does (Pillow's "
                      "luminance 0.299 R + 0.587 G + 0.114 B); a model for colour would start with Conv2d(3, ...).",
            "other_sizes": "28x28 only: a picture is resized first (longest side 20 px, centred), as 04 --image does. "
                           "The MLP's fc1 takes 784 = 28 * 28 inputs; the CNN's convolutions take any size, but its "
                           "fc1 takes 64 * 7 * 7 = 3136 (28 -> 14 -> 7), and a 32x32 image gives 64 * 8 * 8 = 4096.",
            "mlp_fc1_inputs": models["mlp"].fc1.in_features, "cnn_fc1_inputs": models["cnn"].fc1.in_features,
            "errors": {f"{name}_{what}": error(models[name], shape) for name in MODELS
                       for what, shape in (("32x32", (1, 1, 32, 32)), ("colour_28x28", (1, 3, 28, 28)))}}


# --- The figure, the table and the run ---
def plot(results: dict, rows: list, note: str, path: Path) -> Path:
    """Two rows of pictures with each model's answer; accuracy against the shift; mean confidence."""
    fig = plt.figure(figsize=(15, 10), layout="constrained")
    *picture_rows, bottom = fig.subfigures(3, 1, height_ratios=[1, 1, 1.5])
    columns = max(len(pictures) for _, pictures in rows)
    for sub, (what, pictures) in zip(picture_rows, rows):
        for ax, (title, (image, answers)) in zip(sub.subplots(1, columns), pictures.items()):
            ax.imshow(image.reshape(28, 28).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
            ax.set_title(f"{title}\n" + "\n".join(f"{m.upper()}: {a['says']} ({100 * a['confidence']:.0f}%)"
                                                   for m, a in answers.items()), fontsize=9)
        for ax in sub.axes[len(pictures):]:
            ax.remove()
        sub.suptitle(f"{what}: the digit each model says, and its confidence")
    ax_shift, ax_sure = bottom.subplots(1, 2)
    shifts = [0] + results["settings"]["shifts"]
    for name in MODELS:
        line, = ax_shift.plot(shifts, [100 * results[f"shifted_{k}" if k else "normal"][name]["accuracy"]
                                       for k in shifts], marker="o", label=f"{name.upper()}: shifted")
        ax_shift.axhline(100 * results["inverted"][name]["accuracy"], ls="--", color=line.get_color(),
                         label=f"{name.upper()}: inverted colours, not shifted")
    ax_shift.axhline(10, color="gray", ls=":", label="guessing (10%)")
    ax_shift.set(title="Accuracy on the 10,000 test images moved right and down, no re-centring",
                 xlabel="shift (pixels right, and as many down)", ylabel="accuracy (%)", xticks=shifts, ylim=(0, 102))
    ax_shift.legend(fontsize=8)
    groups = ["normal", "inverted", f"shifted_{shifts[-1]}", "letters", "noise"]
    for i, name in enumerate(MODELS):
        bars = ax_sure.bar([g + (i - 0.5) * 0.38 for g in range(len(groups))], width=0.38, label=name.upper(),
                           height=[100 * results[group][name]["mean_confidence"] for group in groups])
        ax_sure.bar_label(bars, fmt="%.0f", fontsize=8)
    ax_sure.set(title="How sure: mean confidence (largest softmax probability)", ylabel="mean confidence (%)",
                xticks=range(len(groups)), xticklabels=[g.replace("_", " ") for g in groups], ylim=(0, 108))
    ax_sure.legend(loc="upper center")
    fig.suptitle(f"What the models cannot do ({note})")
    return dl_utils.finish_figure(fig, path)


def report(results: dict, conditions: list) -> None:
    """Accuracy (where there are labels) and mean confidence per model; the letters; the shape errors."""
    print(f"{'':12}" + "".join(f"{m.upper() + ' accuracy':>15}{'confidence':>12}" for m in MODELS))
    for key in [*conditions, "letters", "noise"]:
        print(f"{key:12}" + "".join((f"{100 * results[key][m]['accuracy']:14.2f}%" if key in conditions
                                     else f"{'-':>15}") + f"{100 * results[key][m]['mean_confidence']:11.1f}%"
                                    for m in MODELS))
    for m in MODELS:
        print(f"{m.upper()} on letters: " + ", ".join(f"{letter} -> {a['says']} ({100 * a['confidence']:.0f}%)"
                                                       for letter, a in results["letters"][m]["by_letter"].items()))
    print("\n".join(f"{key}: {message}" for key, message in results["colour_and_size"]["errors"].items()))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", metavar="DATA_DIR", help="folder holding MNIST/raw/ (default: $DL_DATA_DIR, "
                        "else data/ beside the scripts)")
    parser.add_argument("--out-dir", type=Path, default=dl_utils.DEFAULT_OUT_DIR,
                        help="where the JSON and the figure go (default: outputs/ beside the scripts)")
    for name, lesson, file in (("mlp", "03", "mnist_model.pth"), ("cnn", "06", "cnn_model.pth")):
        parser.add_argument(f"--{name}", type=Path, help=f"{lesson}'s checkpoint, e.g. outputs/{file} (default: "
                            f"none: train {lesson}'s defaults here, seed {SEED})")
    parser.add_argument("--shifts", type=dl_utils.positive_int, nargs="+", default=SHIFTS,
                        help="pixels to move every test digit right and down (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    args = dl_utils.parse_args(parser, argv)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=64, seed=SEED, device=device)
    models, normalizations, sources = {}, {}, {}
    for name, path, train, made_by in (("mlp", args.mlp, train_mlp, "03_train_mnist.py"),
                                       ("cnn", args.cnn, train_cnn, "06_cnn_mnist.py")):
        dl_utils.step(f"{name.upper()}: {'loading ' + str(path) if path else train.__doc__}")
        models[name], normalizations[name] = (load_model(path, device, made_by) if path
                                              else (train(data, device), data.normalization))
        sources[name] = str(path) if path else f"trained here, seed {SEED}: {train.__doc__}"

    dl_utils.step("What they say")
    # The 10,000 TEST images: this script reports behaviour and chooses nothing (no setting, no model),
    # so reading them leaks into no choice. Every choice in the course is made on validation.
    pixels = (data.test_loader.images.cpu() * data.std + data.mean).clamp(0, 1)  # undo the normalisation
    labels = data.test_loader.labels.cpu()
    conditions = {"normal": pixels, "inverted": invert(pixels),
                  **{f"shifted_{k}": shift(pixels, k) for k in args.shifts}}
    letters = {letter: render_letter(letter) for letter in LETTERS}
    pictures = {**conditions, "letters": torch.stack(list(letters.values())),
                "noise": torch.rand((NOISE_IMAGES, 1, 28, 28), generator=torch.Generator().manual_seed(SEED)),
                "blank": torch.zeros(1, 1, 28, 28)}
    font = ImageFont.load_default()
    results = {"script": "limitations", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "device": dl_utils.device_name(device), **dl_utils.machine_info(),
               "settings": dl_utils.settings_from_args(args), "models": sources, "test_images": len(labels),
               "noise_kind": "every pixel uniform in [0, 1], seed 0",
               "font": " ".join(font.getname()) if hasattr(font, "getname") else "Pillow's bitmap default"}
    first = {}  # each model's answer for the first picture of each kind: the figure shows them
    for name, model in models.items():
        said = {key: predict(model, images, normalizations[name], device) for key, images in pictures.items()}
        for key, probabilities in said.items():
            results.setdefault(key, {})[name] = summarize(probabilities, labels if key in conditions else None)
        results["letters"][name]["mean_confidence_on_test_digits"] = results["normal"][name]["mean_confidence"]
        results["letters"][name]["by_letter"] = {letter: answer(p) for letter, p in zip(letters, said["letters"])}
        first[name] = {key: answer(probabilities[0]) for key, probabilities in said.items()}
    for k in args.shifts:  # how much of the ink fell off the edge, in all 10,000 images
        results[f"shifted_{k}"]["ink_lost"] = 1 - float(conditions[f"shifted_{k}"].sum() / pixels.sum())
    results["colour_and_size"] = shape_facts(models, device)
    report(results, list(conditions))
    note = " and ".join(f"{lesson}'s {name.upper()} " + (path.name if path else f"trained here (seed {SEED})")
                        for lesson, name, path in (("03", "mlp", args.mlp), ("06", "cnn", args.cnn)))
    unnamed = argparse.Namespace(**{**vars(args), "mlp": None, "cnn": None})  # checkpoints named above, no folders
    note += f"; settings: {dl_utils.changed_settings(parser, unnamed)}"
    rows = [("Capital letters, prepared as 04 --image does",
             {letter: (image, {m: results["letters"][m]["by_letter"][letter] for m in MODELS})
              for letter, image in letters.items()}),
            ("Test image 0, changed", {key.replace("_", " "): (images[0], {m: first[m][key] for m in MODELS})
                                       for key, images in pictures.items() if key != "letters"})]
    plot(results, rows, note, args.out_dir / "limitations.png")
    dl_utils.save_results(args.out_dir, "limitations", results)
    return results


if __name__ == "__main__":
    dl_utils.run(main)
