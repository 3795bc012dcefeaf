"""06 - Convolutional networks: why they win on images, and what they learn.

What you will learn
  * what a convolution layer does: small filters slid over the image, the
    same few weights used at every position ("weight sharing")
  * how max pooling shrinks the image, and how a tensor's shape changes
    layer by layer: (B, 1, 28, 28) -> ... -> (B, 10), printed for one batch
  * why the CNN beats the MLP of 03 (about 99.3% against 97.8%), where its
    parameters and its computation go, and what it loses when the pixels
    are shuffled (--pixels shuffled: the MLP never notices, the CNN does)
  * a learning-rate schedule (OneCycle), and what makes a CPU train a CNN fast
    (memory layout, pooling before the ReLU, fewer epochs), each measured
  * how to look inside a trained network: its filters, its feature maps,
    its confusion matrix (which digits it mixes up), and its worst mistakes

Run first: 03_train_mnist.py, to compare the CNN with the MLP (optional).

Run it
    python 06_cnn_mnist.py                           # the full lesson: 2 epochs, about 99.3%
    python 06_cnn_mnist.py --quick                   # 1 epoch on 5,000 images: seconds
    python 06_cnn_mnist.py --schedule constant --lr 0.001   # no schedule, as in 03: compare
    python 06_cnn_mnist.py --epochs 1 --pixels shuffled      # one fixed shuffle of the 784 pixels: compare
    python 06_cnn_mnist.py --no-channels-last        # the same maths, slower on a CPU: compare
    python 06_cnn_mnist.py --augment                 # train on randomly rotated/shifted digits
    python 06_cnn_mnist.py --image my_digit.png      # then read your own handwriting
    python 04_load_model.py --model outputs/cnn_model.pth --image my_digit.png   # later, without training again
    python 06_cnn_mnist.py --data-dir DATA_DIR       # MNIST kept in DATA_DIR/MNIST/raw/ (offline)

Writes (in outputs/, or --out-dir)
    cnn_model.pth              the trained CNN + how it was made (dl_utils.load_checkpoint reads it)
    cnn_training_history.png   loss and accuracy per epoch, train vs validation
    cnn_filters.png            the 32 learned 3x3 filters of the first layer
    cnn_feature_maps.png       one test digit as conv1 and conv2 see it (map i of conv1 = filter i)
    confusion_matrix.png       which digit is mistaken for which, counted on the 10,000 test images
    misclassified.png          the test digits the CNN gets wrong, most confident first
    mlp_vs_cnn.png             parameters per layer, error per epoch and time: 03's MLP next to the CNN
    adversarial_example.png    a test digit, a faint FGSM perturbation, and the CNN fooled by it
    own_digit.png              with --image: your picture, what the CNN saw, its probabilities
    06_cnn_mnist.json          the measured results; experiments.csv gets one more row

How long: on the course's 2-core CPU (fp32), about 20 s of training (2 epochs of
about 10 s) and about 30 s for the whole script (it then draws the figures and tests
the model again); --quick well under half that in all, a few seconds of it training. That is
under half the training time of the plain loop of the same CNN (batch 64, default memory
layout, plain Adam, 3 epochs): README.md "Performance", from benchmarks/bench_training.py
(docs/results/bench_training.json); section 4 says why. The exact figures are in README.md
"Results". Times on a GPU have not been measured.
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

import dl_utils

# ---------------------------------------------------------------------------
# Settings: change one, rerun, compare (each has a flag; see --help)
# ---------------------------------------------------------------------------
EPOCHS = 2  # with OneCycle, 2 epochs reach about 99.3% test accuracy (mean of 5 seeds: README "Results")
BATCH_SIZE = 128  # as 03, with a larger peak rate: chosen on validation for 2 epochs (section 4)
LEARNING_RATE = 7e-3  # Adam's PEAK rate under OneCycle, chosen on validation for batch 128 and 2 epochs (section 4)
SCHEDULE = "onecycle"  # "onecycle": warm up to LEARNING_RATE, then anneal to ~0; "constant": no schedule
DROPOUT = 0.25  # dropout before the last layer: a little regularisation for the 401,536-weight fc1
LABEL_SMOOTHING = 0.05  # train towards 95.5% for the true digit, not 100%: chosen on validation, 0 vs 0.05 vs 0.1 (section 4)
AUGMENT = False  # random small rotations/shifts of each training batch (see AugmentedLoader below)
EPSILON = 0.1  # FGSM attack strength, in pixel units (0..1): a faint change to every pixel
CHANNELS_LAST = True  # a faster memory layout for convolutions on the CPU (see to_channels_last below)
FUSED = True  # Adam's update in one kernel per step, as in 03: same rule, a little faster (--no-fused)
N_MISTAKES = 24  # misclassified.png shows this many test mistakes
FEATURE_DIGIT = 0  # which test image cnn_feature_maps.png follows through the network
SEED = 0
MODEL_FILE = "cnn_model.pth"
OPTIMIZER = "adam"  # not a flag: recorded beside the flags so experiments.csv can tell 06 from 03's SGD runs


# ---------------------------------------------------------------------------
# 1. The model
# ---------------------------------------------------------------------------
# An MLP flattens the image first, so for it pixel (3, 4) and pixel (3, 5)
# are unrelated inputs: it would learn the same if we shuffled the pixels.
# A convolution keeps the 2-D layout. Conv2d(1, 32, 3) holds 32 filters of
# 3 x 3 weights; each filter slides over the image and at every position
# computes one number (a weighted sum of the 3 x 3 pixels under it): large
# where the image looks like the filter (an edge, a stroke end). The SAME 9
# weights are used at all 784 positions ("weight sharing"), so a stroke is
# recognised wherever it is, with very few parameters. MaxPool2d(2) then
# keeps the largest value of every 2 x 2 block: half the width and height,
# and a little tolerance to where exactly a feature is. The second conv
# layer combines the 32 edge maps into 64 maps of larger parts of digits;
# two Linear layers at the end make the decision, as in the MLP.
class CNN(nn.Module):
    def __init__(self, dropout: float = DROPOUT):
        super().__init__()
        # The layers are created in the order forward() uses them, so that
        # print_shapes() below can run them one by one.
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)  # 32 * (1*3*3) + 32 = 320 parameters
        self.pool1 = nn.MaxPool2d(2)  # no parameters
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)  # 64 * (32*3*3) + 64 = 18,496
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 128)  # 3,136 * 128 + 128 = 401,536
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, 10)  # 1,290

    # Pool, then ReLU. Most code writes conv -> ReLU -> pool; the two orders
    # give the same numbers, because ReLU never changes which of four
    # numbers is the largest: max(relu(a), relu(b)) = relu(max(a, b)).
    # Pooling first leaves the ReLU 4x fewer numbers to compute (and to
    # differentiate): 32 x 14 x 14 instead of 32 x 28 x 28 per image. Same
    # outputs, same gradients, the same trained weights bit for bit
    # (tests/test_05_06.py checks it), and with channels_last a faster step
    # (section 4, README "Performance").
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))  # (B, 1, 28, 28) -> (B, 32, 28, 28) -> (B, 32, 14, 14)
        x = self.relu2(self.pool2(self.conv2(x)))  # -> (B, 64, 14, 14) -> (B, 64, 7, 7)
        x = self.flatten(x)  # -> (B, 3136): 64 maps of 7 x 7
        x = self.dropout(self.relu3(self.fc1(x)))  # -> (B, 128)
        return self.fc2(x)  # -> (B, 10) logits

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What conv1 and conv2 (after a ReLU, before pooling) make of the images x: (B, 32, 28, 28), (B, 64, 14, 14)."""
        conv1 = self.relu1(self.conv1(x))
        conv2 = self.relu2(self.conv2(self.pool1(conv1)))  # pool1(relu(.)) = relu(pool1(.)): what conv2 sees
        return conv1, conv2


def print_shapes(model: CNN, images: torch.Tensor) -> list[dict]:
    """Run one batch through the layers one at a time, printing each output's shape."""
    rows = []
    x = images
    print(f"  {'input':30s} {str(tuple(x.shape)):18s}")
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            parameters = dl_utils.count_parameters(layer)
            rows.append({"layer": name, "shape": list(x.shape), "parameters": parameters})
            print(f"  {name + ': ' + layer.__class__.__name__:30s} {str(tuple(x.shape)):18s} "
                  f"{parameters:>9,} parameters")
    return rows


def multiply_adds_per_image(model: CNN) -> dict:
    """How many multiply-adds one image costs in each layer (the compute, not the storage).

    A Linear layer uses each weight once per image. A conv layer uses each
    weight once per output POSITION: conv1 at 28 x 28 = 784 positions, conv2
    at 14 x 14 = 196. Few parameters, a lot of computation.
    """
    return {"conv1": model.conv1.weight.numel() * 28 * 28, "conv2": model.conv2.weight.numel() * 14 * 14,
            "fc1": model.fc1.weight.numel(), "fc2": model.fc2.weight.numel()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a convolutional network on MNIST and look inside it.")
    dl_utils.add_common_args(parser, seed=SEED, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE)
    parser.add_argument("--schedule", "--scheduler", dest="schedule", choices=["onecycle", "constant"],
                        default=SCHEDULE,
                        help="learning-rate schedule: onecycle (--lr is the peak) or constant (default: %(default)s)")
    parser.add_argument("--label-smoothing", type=dl_utils.fraction, default=LABEL_SMOOTHING,
                        help="the share of the target spread evenly over all 10 digits; 0 = plain "
                             "cross-entropy, as in 03 (default: %(default)s)")
    parser.add_argument("--dropout", type=dl_utils.fraction, default=DROPOUT,
                        help="dropout probability before the last layer (default: %(default)s)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=CHANNELS_LAST,
                        help="keep PyTorch's default memory layout (slower on a CPU, same results up to rounding)")
    parser.add_argument("--no-fused", dest="fused", action="store_false", default=FUSED,
                        help="Adam's textbook for-loop update instead of the fused kernel: the same rule, slower")
    parser.add_argument("--augment", action="store_true", default=AUGMENT,
                        help="train on randomly rotated (up to 10 degrees) and shifted (up to 2 px) digits")
    parser.add_argument("--epsilon", type=dl_utils.fraction, default=EPSILON,
                        help="FGSM adversarial attack strength in pixel units 0..1 (default: %(default)s)")
    parser.add_argument("--image", type=Path, default=None,
                        help="after training, classify this PNG/JPEG of a handwritten digit")
    return parser


# ---------------------------------------------------------------------------
# Lesson helpers: augmentation, the adversarial attack, a faster memory layout
# ---------------------------------------------------------------------------
class AugmentedLoader:
    """Wraps a training loader; every batch gets small random rotations and shifts.

    Data augmentation shows the network a slightly different version of each
    digit every epoch, so it learns "a 7 tilted a bit is still a 7" instead of
    memorising exact pixels (see "Regularization" in ML_CONCEPTS_EXPLAINED.md).
    The whole batch is transformed at once with `affine_grid` + `grid_sample`
    (one random rotation + shift per image, computed as tensor maths), so it
    costs far less than per-image PIL transforms. `padding_mode="border"`
    fills the pixels rotated in from outside with the edge value, which in
    MNIST is background. Use it for training only: validation and test
    images must stay untouched.
    """

    def __init__(self, loader, *, max_degrees: float = 10.0, max_shift: float = 2.0, seed: int = 0):
        self.loader, self.max_degrees, self.max_shift = loader, max_degrees, max_shift
        self.dataset = loader.dataset
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            yield self.augment(images), labels

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        angle = (torch.rand(n, generator=self.generator) * 2 - 1) * math.radians(self.max_degrees)
        # affine_grid measures shifts in units of half the image: 2 px of 28 -> 2 / 14.
        shift = (torch.rand(n, 2, generator=self.generator) * 2 - 1) * self.max_shift * 2 / width
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(images)  # (n, 2, 3)
        grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        return nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)


def fgsm_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epsilon: float,
                mean: float, std: float) -> torch.Tensor:
    """Adversarial examples by the Fast Gradient Sign Method (Goodfellow et al., 2014).

    Training asks "how should the WEIGHTS change to lower the loss?"; FGSM
    asks backward() the opposite question about the INPUT: which way should
    each pixel move to RAISE the loss? It then moves every pixel by
    `epsilon` (in 0..1 pixel units) in that direction:
        x_adv = x + epsilon * sign(d loss / d x)
    A change too faint for a person to care about can flip the prediction.
    `images` are normalised, so epsilon is divided by `std` to stay in pixel
    units, and the result is clamped to the valid pixel range [0, 1].
    """
    model.eval()
    images = images.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    adversarial = images.detach() + (epsilon / std) * gradient.sign()
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    return adversarial.clamp(low, high)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store a CNN's weights in the "channels last" memory layout; returns the model.

    Why: a convolution combines all the channels of one pixel at once. By
    default PyTorch stores an image batch as (N, C, H, W): channel after
    channel, so the 32 values of one pixel lie far apart in memory.
    `channels_last` keeps the same shape and indexing (x[n, c, h, w] still
    works) but stores the numbers as (N, H, W, C), the channels of a pixel
    side by side, which the CPU's convolution code (oneDNN) reads much
    faster. The maths, and so the accuracy, is unchanged; the time per
    epoch is in README "Performance" (benchmarks/bench_training.py
    --experiments). Only the 4-D conv weights change; the input needs
    no conversion because an MNIST image has 1 channel, where both layouts
    are the same bytes, and every later activation follows the weights.
    """
    return model.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------
# Plots of what the network learned
# ---------------------------------------------------------------------------
def plot_filters(model: CNN, path, *, show: bool):
    """cnn_filters.png: the 32 first-layer 3x3 filters, red = positive weight, blue = negative."""
    import matplotlib.pyplot as plt

    weights = model.conv1.weight.detach().cpu()[:, 0]  # (32, 3, 3): one input channel
    limit = weights.abs().max().item()  # one symmetric colour scale: white is 0 in every filter
    fig = plt.figure(figsize=(10.5, 5.8))
    grid = fig.add_gridspec(4, 9, width_ratios=[1] * 8 + [0.12])  # 4 x 8 filters, then the colour bar
    for i in range(32):
        ax = fig.add_subplot(grid[i // 8, i % 8])
        image = ax.imshow(weights[i].numpy(), cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, cax=fig.add_subplot(grid[:, 8]), label="weight")
    fig.suptitle("The 32 learned first-layer filters (3 x 3 weights each). A filter responds where the image "
                 "looks like it:\nred = bright pixel wanted there, blue = dark wanted. Red beside blue = an edge "
                 "detector, in that direction.", fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


def tile_maps(maps: torch.Tensor, columns: int) -> "np.ndarray":
    """(C, H, W) feature maps -> one (rows * (H + gap), columns * (W + gap)) picture, each map scaled to its max.

    One picture with C tiles draws far faster than C small plots. The gaps are
    NaN, drawn white; a label row above each tile leaves room for its number.
    """
    import numpy as np

    channels, height, width = maps.shape
    rows, gap = -(-channels // columns), max(2, height // 4)  # ceil(C / columns) rows
    picture = np.full((rows * (height + gap), columns * (width + gap)), np.nan)
    for channel, image in enumerate(maps.numpy()):
        top, left = (channel // columns) * (height + gap) + gap, (channel % columns) * (width + gap)
        picture[top:top + height, left:left + width] = image / image.max() if image.max() > 0 else image
    return picture


def plot_feature_maps(model: CNN, image: torch.Tensor, label: int, path, *, mean: float, std: float, show: bool,
                      note: str = "defaults"):
    """cnn_feature_maps.png: one digit, its 32 conv1 maps and its 64 conv2 maps, each numbered."""
    import matplotlib.pyplot as plt

    model.eval()
    with torch.no_grad():
        conv1, conv2 = model.feature_maps(image.unsqueeze(0))
    conv1, conv2 = conv1[0].cpu(), conv2[0].cpu()  # (32, 28, 28), (64, 14, 14)
    fig, (ax_input, ax_conv1, ax_conv2) = plt.subplots(1, 3, figsize=(15, 8.2),
                                                       gridspec_kw={"width_ratios": [1.2, 1.9, 3]})
    ax_input.imshow((image[0].cpu() * std + mean).numpy(), cmap="gray", vmin=0, vmax=1)
    ax_input.set_title(f"input: a {label}\n(1 x 28 x 28)")
    ax_input.axis("off")
    cmap = plt.get_cmap("gray").with_extremes(bad="white")  # the gaps between the maps
    for ax, maps, columns, text in (
        (ax_conv1, conv1, 4, "conv1 + ReLU: 32 maps of 28 x 28\nmap i = filter i of cnn_filters.png: bright = "
                             "its\npattern is there (edges of the strokes, each\nfilter its own direction; a grey "
                             "background\n= it fires on empty space too)"),
        (ax_conv2, conv2, 8, "conv2 + ReLU: 64 maps of 14 x 14 (after pooling)\neach combines all 32 "
                             "conv1 maps: larger parts of the digit\n(a bar, a corner, a stroke end); "
                             "black = not found here"),
    ):
        height, width = maps.shape[1:]
        gap = max(2, height // 4)
        ax.imshow(tile_maps(maps, columns), cmap=cmap, vmin=0, vmax=1)  # ReLU output is never negative
        for channel in range(len(maps)):  # each map's number, in the gap above it
            ax.text((channel % columns) * (width + gap) + width / 2, (channel // columns) * (height + gap) + gap - 0.5,
                    str(channel), ha="center", va="bottom", fontsize=7)
        ax.set_title(text, fontsize=10)
        ax.axis("off")
    fig.suptitle("One test digit on its way through the CNN (each small map is scaled to its own maximum)"
                 f"\nsettings: {note}", fontsize=12)
    return dl_utils.finish_figure(fig, path, show=show)


def load_mlp_results(out_dir) -> dict | None:
    """03's measurements, from 03_train_mnist.json or else from mnist_model.pth; None if 03 never ran."""
    json_path = out_dir / "03_train_mnist.json"
    if json_path.is_file():
        try:
            saved = json.loads(json_path.read_text())
            return {"source": json_path.name, "parameters": saved["parameters"],
                    "test_accuracy": saved["test_accuracy"], "train_seconds": saved["train_seconds"],
                    "epochs": saved.get("epochs_run"), "subset": saved.get("hyperparameters", {}).get("subset"),
                    "val_accuracy": saved.get("history", {}).get("val_accuracy")}
        except (ValueError, KeyError, AttributeError):
            print(f"(Could not read {json_path}: not 03's results. Trying mnist_model.pth.)")
    model_path = out_dir / "mnist_model.pth"
    if model_path.is_file():
        checkpoint = dl_utils.load_checkpoint(model_path)
        metrics, hyper = checkpoint.get("metrics", {}), checkpoint.get("hyperparameters", {})
        if "test_accuracy" in metrics:
            return {"source": model_path.name,
                    "parameters": sum(t.numel() for k, t in checkpoint["state_dict"].items()
                                      if k.endswith(("weight", "bias"))),
                    "test_accuracy": metrics["test_accuracy"], "train_seconds": metrics.get("train_seconds"),
                    "epochs": hyper.get("epochs"), "subset": hyper.get("subset"), "val_accuracy": None}
    return None


def plot_mlp_vs_cnn(mlp: dict | None, mlp_layers: dict, cnn: dict, cnn_layers: dict, path, *, show: bool,
                    note: str = "defaults"):
    """mlp_vs_cnn.png: parameters per layer; validation error after every epoch with the final test error; time.

    The two runs need not have the same number of epochs (03 trains 10, 06 2),
    so the middle panel compares them epoch by epoch, and the time panel says
    how many epochs each bar paid for. Errors (100% - accuracy) are drawn from
    0, so "3.6 times fewer mistakes" looks like it.
    """
    import matplotlib.pyplot as plt

    fig, (ax_params, ax_error, ax_time) = plt.subplots(1, 3, figsize=(16, 5.2),
                                                       gridspec_kw={"width_ratios": [1.7, 1.4, 1]})
    names = [f"MLP {k}" for k in mlp_layers] + [f"CNN {k}" for k in cnn_layers]
    counts = list(mlp_layers.values()) + list(cnn_layers.values())
    colors = ["tab:blue"] * len(mlp_layers) + ["tab:green"] * len(cnn_layers)
    bars = ax_params.barh(names, counts, color=colors)
    ax_params.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=9)
    ax_params.set_xscale("log")  # 320 to 401,536: only a log axis shows both
    ax_params.set_xlim(100, 5e6)
    ax_params.invert_yaxis()
    ax_params.set(title="Parameters per layer (log scale): the convolutions need few", xlabel="parameters")

    rows = (("MLP (03)", mlp, "tab:blue"), ("CNN (06)", cnn, "tab:green"))
    for name, row, color in rows:
        if not row:
            continue
        if row.get("val_accuracy"):
            errors = [100 * (1 - a) for a in row["val_accuracy"]]
            ax_error.plot(range(1, len(errors) + 1), errors, "o-", color=color, label=f"{name}: validation")
        last = row.get("epochs") or len(row.get("val_accuracy") or []) or 1
        test_error = 100 * (1 - row["test_accuracy"])
        ax_error.plot([last], [test_error], "*", color=color, markersize=15, markeredgecolor="black",
                      label=f"{name}: test, after epoch {last}: {test_error:.2f}% wrong")
    if mlp is None:
        ax_error.text(0.5, 0.6, "MLP not measured:\nrun 03_train_mnist.py first", transform=ax_error.transAxes,
                      ha="center", color="gray")
    ax_error.set_ylim(bottom=0)
    ax_error.set_xlim(0.5, max([row.get("epochs") or 1 for _, row, _ in rows if row] + [3]) + 0.5)
    ax_error.set(title="Error (% of digits wrong) after each epoch\nthe axis starts at 0; compare at the same epoch",
                 xlabel="epoch", ylabel="% wrong (100% - accuracy)")
    ax_error.legend(fontsize=8.5, loc="upper right")

    for x, (name, row, color) in enumerate(rows):
        seconds = row.get("train_seconds") if row else None
        if seconds is None:  # 03 has not run (or did not record it): say so instead of a bar
            ax_time.text(x, 0.5, "not measured:\nrun 03 first", transform=ax_time.get_xaxis_transform(),
                         ha="center", va="center", color="gray")
            continue
        epochs = row.get("epochs")
        bar = ax_time.bar(x, seconds, color=color, width=0.6)
        ax_time.bar_label(bar, padding=3, labels=[f"{seconds:.0f} s" + (
            f"\n{epochs} epoch{'s' if epochs > 1 else ''}, {seconds / epochs:.1f} s each" if epochs else "")])
    ax_time.set_xticks([0, 1], ["MLP (03)", "CNN (06)"])
    ax_time.set_xlim(-0.6, 1.6)
    ax_time.margins(y=0.25)
    ax_time.set(title="Training time (each run's own epochs)", ylabel="seconds")

    mlp_text = (f"MLP: 03's last run, {mlp['epochs']} epochs" + (f" on {mlp['subset']:,} images" if mlp.get("subset")
                else "") + f" (from {mlp['source']})") if mlp else "MLP: run 03_train_mnist.py to measure it"
    fig.suptitle(f"03's MLP next to this CNN.   {mlp_text}.   CNN: this run, {cnn['epochs']} "
                 f"epoch{'s' if cnn['epochs'] > 1 else ''} ({note})", fontsize=10.5)
    for ax in (ax_params, ax_error, ax_time):
        ax.grid(alpha=0.3, axis="x" if ax is ax_params else "y")
    return dl_utils.finish_figure(fig, path, show=show)


def plot_adversarial(image, adversarial, probs, adversarial_probs, label: int, epsilon: float, path, *,
                     mean: float, std: float, show: bool) -> Path:
    """Original | perturbation x 10 | adversarial image, with both predictions."""
    import matplotlib.pyplot as plt

    original = (image[0] * std + mean).numpy()
    attacked = (adversarial[0] * std + mean).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.4))
    panels = [
        (original, "gray", (0, 1), f"original (true {label})\nCNN: {int(probs.argmax())} ({100 * probs.max():.1f}%)"),
        ((attacked - original) * 10, "seismic", (-1, 1), f"perturbation x 10: red brighter, blue darker\n(each pixel moved by at most {epsilon:g})"),
        (attacked, "gray", (0, 1), f"original + perturbation\nCNN: {int(adversarial_probs.argmax())} "
                                   f"({100 * adversarial_probs.max():.1f}%)"),
    ]
    for ax, (picture, cmap, (low, high), title) in zip(axes, panels):
        ax.imshow(picture, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle("An adversarial example (FGSM): a faint change, chosen with the gradient, flips the answer")
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 2. Device, seed, data (as in 03)
# ---------------------------------------------------------------------------
# --pixels shuffled moves every pixel to another place, one fixed permutation
# for all images (dl_utils.shuffle_pixels). No information is lost, only the
# layout, which is all a convolution relies on: in the course's 1-epoch runs
# the CNN lost about 3 points with shuffled pixels (LEARNING_GUIDE.md, 06).
def load_data(args, device: torch.device) -> dl_utils.MNISTData:
    """Section 2: MNIST in memory, as in 03; a bad --image is reported now, before a minute of training."""
    if args.image is not None and args.pixels == "shuffled":
        raise dl_utils.CourseError(
            "--image with --pixels shuffled: a CNN trained on shuffled pixels only knows shuffled digits, and "
            "your picture is not shuffled, so its answer would mean nothing. Drop one of the two flags.")
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels)
    print(f"Data: {len(data.train_loader.dataset):,} training, {len(data.val_loader.dataset):,} validation, "
          f"{len(data.test_loader.dataset):,} test images; {len(data.train_loader)} batches of up to "
          f"{args.batch_size} per epoch")
    if args.image is not None:  # a missing or unreadable picture: say so now, not after a minute of training
        dl_utils.prepare_digit_image(args.image, **data.normalization)
    return data


# ---------------------------------------------------------------------------
# 3. The model, layer by layer: shapes, parameters, computation
# ---------------------------------------------------------------------------
# Weight sharing, in numbers. conv1 turns 784 pixels into 32 x 28 x 28 =
# 25,088 outputs with 320 parameters. A Linear layer making the same
# 25,088 outputs would need a weight for every (input, output) pair:
# 784 x 25,088 = 19.7 million. The convolution gets away with 320 because
# it assumes what is true of images: the same pattern means the same thing
# anywhere, and it only depends on nearby pixels.
def describe_model(model: CNN, data, batch_size: int) -> dict:
    """Section 3: print the network, one batch's shape after every layer, its parameters and multiply-adds."""
    print(f"\n{model}\n\nOne batch on its way through the layers (B = {batch_size} images):")
    first_images, _ = next(iter(data.val_loader))  # validation images: the training order stays untouched
    layer_shapes = print_shapes(model, first_images[:batch_size])

    parameters = dl_utils.count_parameters(model)
    conv_parameters = dl_utils.count_parameters(model.conv1) + dl_utils.count_parameters(model.conv2)
    mlp_model = dl_utils.import_script("03_train_mnist").SimpleNN()  # 03's MLP, for its parameter count
    mlp_layers = {name: dl_utils.count_parameters(layer) for name, layer in mlp_model.named_children()
                  if dl_utils.count_parameters(layer)}
    cnn_layers = {name: dl_utils.count_parameters(getattr(model, name)) for name in ("conv1", "conv2", "fc1", "fc2")}
    macs = multiply_adds_per_image(model)
    mlp_macs = mlp_model.fc1.weight.numel() + mlp_model.fc2.weight.numel()  # each weight used once per image
    print(f"\nParameters: CNN {parameters:,} (the two conv layers only {conv_parameters:,}; fc1 alone "
          f"{cnn_layers['fc1']:,}), 03's MLP {dl_utils.count_parameters(mlp_model):,}.")
    print(f"Weight sharing: conv1 makes 32 x 28 x 28 = 25,088 numbers from 784 pixels with "
          f"{cnn_layers['conv1']} parameters; a Linear layer making as many would need "
          f"{784 * 25088 + 25088:,}.")
    print(f"Work per image: the CNN does {sum(macs.values()):,} multiply-adds (conv2 alone {macs['conv2']:,}), "
          f"the MLP {mlp_macs:,}: {sum(macs.values()) / mlp_macs:.0f} times more, because every conv weight "
          "is used at every position. That is why a CNN epoch takes longer.")
    # Measured on the course's 2-core machine: 03 with --hidden 512 reached about 98.0% test accuracy
    # (seed 0, 10 epochs: docs/results/03_hidden_512.json), a tenth of a point above 128 neurons; the CNN 99.3%.
    print("Bigger is not the reason it wins: an MLP as big (407,050 parameters) reaches about 98%, "
          "a tenth of a point above 03's 128-neuron MLP. Try: python 03_train_mnist.py --hidden 512")
    return {"parameters": parameters, "layer_shapes": layer_shapes, "parameters_by_layer": cnn_layers,
            "multiply_adds_per_image": macs, "mlp_layers": mlp_layers,
            "mlp_parameters": dl_utils.count_parameters(mlp_model)}


# ---------------------------------------------------------------------------
# 4. Train: the same five-step loop as 03, plus a learning-rate schedule
# ---------------------------------------------------------------------------
# OneCycle raises the learning rate from lr/25 to --lr over the first 30%
# of the steps (a gentle start while the weights are random), then lowers
# it to almost zero (small, careful steps at the end settle into a good
# minimum). It is stepped after every batch: train_model passes it to
# train_epoch. --schedule constant keeps --lr throughout, as 03 does, so you
# can measure what the schedule adds (LEARNING_GUIDE.md, 06, has the course's
# runs): little next to what the convolutions add over 03's MLP.
#
# Why these defaults are fast (README "Performance" times each against the
# plain loop: batch 64, NCHW layout, plain Adam, constant lr, 3 epochs):
#   * channels_last: the numbers laid out the way the CPU's convolution
#     code reads them fastest (to_channels_last above);
#   * pooling before the ReLU (CNN.forward): the same numbers, less work;
#   * fused Adam (--no-fused to compare), as in 03: one kernel per step;
#   * 2 epochs instead of 3: OneCycle anneals to almost 0 by the last step
#     of however many epochs it is given, and 2 were enough for about 99.3%
#     (README "Results", mean of 5 seeds);
#   * batch 128 with a peak rate of 7e-3: half the steps of batch 64, each
#     twice the work, so about the same time per epoch (measured within
#     noise of batch 64). A batch twice as large takes half the steps, so it
#     wants a larger rate: of 5e-3, 7e-3 and 1e-2, 7e-3 had the best mean
#     validation accuracy after 2 epochs (seeds 0-4; the test set unread),
#     measured before label smoothing and fused Adam were added, and not
#     chosen again since.
#
# Label smoothing (--label-smoothing 0.05): the loss's target for an image
# of a 3 is not "100% a 3" but 95.5% a 3 and 0.5% each other digit
# (1 - 0.05 + 0.05 / 10 and 0.05 / 10). Plain cross-entropy is only 0 for
# an infinitely sure answer, so it keeps pushing the logits of images it
# already gets right further apart; with smoothing there is a finite best
# answer. Over seeds 0-4, 0.05 and 0.1 tied on mean validation accuracy
# after 2 epochs, both well above 0 (LEARNING_GUIDE.md, 06, has the
# figures); 06 keeps the smaller one, the gentler change to the loss.
# Every loss 06 prints, train, validation and test, includes the
# smoothing, so it cannot reach 0: its floor, a right answer exactly as
# sure as the target, is printed below.
def smoothing_floor(smoothing: float, classes: int = 10) -> float:
    """The lowest smoothed cross-entropy: the entropy of the target itself (0.28 for 0.05 and 10 digits)."""
    true, other = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(true * math.log(true) + (classes - 1) * (other * math.log(other) if other else 0.0))


def train(model: CNN, data, args, device: torch.device) -> tuple[CNN, dict, dict]:
    """Section 4: (the trained model, its history per epoch, its test loss and accuracy)."""
    if args.channels_last and device.type == "cpu":
        model = to_channels_last(model)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    fused = args.fused and dl_utils.fused_adam_works(device)  # 03's make_optimizer explains fused
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=fused)
    scheduler = None
    if args.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                        steps_per_epoch=len(data.train_loader))
    print(f"\nTraining for {args.epochs} epoch{'s' if args.epochs > 1 else ''} (Adam{', fused' if fused else ''}, "
          f"{args.schedule} learning "
          f"rate, {'peak ' if scheduler else ''}lr {args.lr:g}, batch {args.batch_size}, "
          f"{'channels_last' if args.channels_last and device.type == 'cpu' else 'default'} memory layout)")
    if args.label_smoothing:
        print(f"Label smoothing {args.label_smoothing:g}: every loss below includes it, so a right answer scores "
              f"at best {smoothing_floor(args.label_smoothing):.3f}, not 0")
    train_loader = data.train_loader
    if args.augment:  # validation and test images stay untouched
        train_loader = AugmentedLoader(train_loader, seed=args.seed)
    history = dl_utils.train_model(model, train_loader, data.val_loader, loss_fn=loss_fn,
                                   optimizer=optimizer, epochs=args.epochs, device=device, scheduler=scheduler)
    test = dl_utils.evaluate_model(model, data.test_loader, loss_fn=loss_fn, device=device)
    print(f"\nTest accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.3f}) "
          f"after {sum(history['seconds']):.1f}s of training")
    return model, history, test


# ---------------------------------------------------------------------------
# 5. What did it learn? Filters and feature maps
# ---------------------------------------------------------------------------
# The filters are the conv1 weights themselves. The feature maps are what
# the layers output for one digit: where each filter found its pattern.
def what_it_learned(model: CNN, data, out_dir: Path, *, show: bool, note: str) -> None:
    """Section 5: cnn_filters.png and cnn_feature_maps.png."""
    plot_filters(model, out_dir / "cnn_filters.png", show=show)
    digit = min(FEATURE_DIGIT, len(data.test_loader.images) - 1)
    plot_feature_maps(model, data.test_loader.images[digit], int(data.test_loader.labels[digit]),
                      out_dir / "cnn_feature_maps.png", mean=data.mean, std=data.std, show=show, note=note)


# ---------------------------------------------------------------------------
# 6. Where does it go wrong? Confusion matrix and the mistakes themselves
# ---------------------------------------------------------------------------
def where_it_goes_wrong(model: CNN, data, device, out_dir: Path, *, show: bool, note: str) -> dict:
    """Section 6: the test predictions, the confusion matrix and its most frequent mistakes, two figures."""
    probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
    matrix = dl_utils.confusion_matrix(probabilities.argmax(dim=1), labels)
    directed = dl_utils.most_confused_pairs(matrix, k=5)
    pairs = dl_utils.most_confused_pairs(matrix, k=3, both_ways=True)
    n_wrong = int(matrix.sum() - matrix.trace())
    print(f"\n{n_wrong} of {len(labels):,} test digits are wrong. The most frequent mistakes (true -> predicted):")
    for true, predicted, count in directed:
        print(f"  {true} read as {predicted}: {count} times")
    pair_text = ", ".join(f"{a}/{b} ({count})" for a, b, count in pairs)
    print(f"Most confused pairs, both directions: {pair_text or 'none'}. (Courses usually name 4/9, 3/5 and 7/1; "
          "these are the ones measured here.)")
    if n_wrong < 200:
        print(f"With only {n_wrong} mistakes these counts are small: another --seed may rank the pairs differently.")
    run = f" ({note})"
    dl_utils.plot_confusion_matrix(
        matrix, out_dir / "confusion_matrix.png", show=show,
        title=f"CNN{run} on the {len(labels):,} test digits: {n_wrong} mistakes\n"
              f"most confused pairs (both directions): {pair_text or 'none'}")

    wrong = dl_utils.misclassified_indices(probabilities, labels, k=N_MISTAKES)
    if len(wrong):
        dl_utils.plot_prediction_grid(
            data.test_loader.images[wrong.to(device)].cpu(), labels[wrong], probabilities[wrong],
            out_dir / "misclassified.png", mean=data.mean, std=data.std, show=show,
            title=f"{len(wrong)} of the CNN's {n_wrong} test mistakes{run}, most confident first "
                  "(pred = its answer and confidence, true = the label)")
    else:  # a perfect score: still write the file, so every run leaves the same set of files
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No test mistakes: nothing to show.", ha="center", va="center", fontsize=14)
        dl_utils.finish_figure(fig, out_dir / "misclassified.png", show=show)
    return {"probabilities": probabilities, "labels": labels, "matrix": matrix, "directed": directed,
            "pairs": pairs, "n_wrong": n_wrong}


# ---------------------------------------------------------------------------
# 7. The MLP of 03 next to the CNN
# ---------------------------------------------------------------------------
# 03 trains for 10 epochs, 06 for 2: a table of final numbers compares
# unequal budgets. mlp_vs_cnn.png therefore draws both runs' validation
# error after EVERY epoch, so you can compare them at the same epoch.
def compare_with_mlp(cnn: dict, description: dict, out_dir: Path, *, show: bool, note: str) -> dict | None:
    """Section 7: 03's last run (if any) beside this one, as a table and as mlp_vs_cnn.png."""
    mlp = load_mlp_results(out_dir)
    print(f"\n{'model':10s} {'parameters':>10s} {'test accuracy':>14s} {'training':>9s} {'epochs':>7s}")
    for name, row in (("MLP (03)", mlp), ("CNN (06)", cnn)):
        if row is None:
            print(f"{name:10s} {description['mlp_parameters']:>10,}   (not trained yet: run 03_train_mnist.py)")
            continue
        seconds = f"{row['train_seconds']:.1f}s" if row.get("train_seconds") is not None else "?"
        print(f"{name:10s} {row['parameters']:>10,} {100 * row['test_accuracy']:>13.2f}% {seconds:>9s} "
              f"{row.get('epochs') or '?':>7}")
    mlp_epochs = (mlp or {}).get("epochs")
    mlp_val = (mlp or {}).get("val_accuracy") or []
    if mlp_epochs and mlp_epochs != cnn["epochs"] and len(mlp_val) >= cnn["epochs"]:
        at = cnn["epochs"]
        print(f"The two runs trained for different numbers of epochs ({mlp_epochs} and {at}). At the same epoch, "
              f"{at}: validation accuracy MLP {100 * mlp_val[at - 1]:.2f}%, CNN {100 * cnn['val_accuracy'][-1]:.2f}%.")
    if mlp and mlp.get("subset"):
        print(f"(03's last run trained on only {mlp['subset']:,} images: rerun 03 without --subset/--quick "
              "for a fair comparison.)")
    plot_mlp_vs_cnn(mlp, description["mlp_layers"], cnn, description["parameters_by_layer"],
                    out_dir / "mlp_vs_cnn.png", show=show, note=note)
    return mlp


# ---------------------------------------------------------------------------
# 8. Fooling it: an adversarial example (FGSM)
# ---------------------------------------------------------------------------
# 99% accurate, yet easy to fool: move every pixel by a faint epsilon in
# the direction that raises the loss most (the sign of the gradient of the
# loss with respect to the INPUT, from one backward pass), and many
# predictions flip, although a person still sees the same digit. The
# network's decision depends on many tiny pixel details at once, and a
# change aligned with all of them adds up. (fgsm_attack, above)
def fool_it(model: CNN, data, predictions: dict, test_accuracy: float, epsilon: float, device, out_dir: Path, *,
            show: bool) -> float:
    """Section 8: FGSM on every test digit; returns the test accuracy on the attacked digits."""
    probabilities, labels = predictions["probabilities"], predictions["labels"]
    # One test batch (1,000 images) at a time: a backward pass through all
    # 10,000 at once would hold every layer's activations, about 5 GB.
    adversarial = torch.cat([fgsm_attack(model, batch, batch_labels, epsilon=epsilon, mean=data.mean, std=data.std)
                             for batch, batch_labels in data.test_loader])
    adversarial_probs, _ = dl_utils.collect_predictions(
        model, dl_utils.InMemoryLoader(adversarial, data.test_loader.labels, batch_size=1000, shuffle=False),
        device=device)
    fooled = (adversarial_probs.argmax(1) != labels) & (probabilities.argmax(1) == labels)
    adversarial_accuracy = (adversarial_probs.argmax(1) == labels).float().mean().item()
    print(f"\nFGSM with epsilon {epsilon:g} (each pixel moves by at most {epsilon:g} of full brightness): "
          f"test accuracy falls from {100 * test_accuracy:.2f}% to {100 * adversarial_accuracy:.2f}%")
    index = int(fooled.nonzero()[0]) if fooled.any() else 0  # the first digit it fools (else digit 0)
    plot_adversarial(data.test_loader.images[index].cpu(), adversarial[index].cpu(), probabilities[index],
                     adversarial_probs[index], int(labels[index]), epsilon,
                     out_dir / "adversarial_example.png", mean=data.mean, std=data.std, show=show)
    return adversarial_accuracy


# ---------------------------------------------------------------------------
# 9. Your own digit
# ---------------------------------------------------------------------------
def read_your_digit(model: CNN, image: Path, data, device, out_dir: Path, *, show: bool) -> dict:
    """Section 9: classify the learner's picture with the CNN; own_digit.png."""
    own = dl_utils.classify_own_digit(model, image, normalization=data.normalization, device=device,
                                      out_path=out_dir / "own_digit.png", model_name="the CNN", show=show)
    print("\n" + own.pop("report"))
    return own


def main(argv=None) -> dict:
    parser = build_parser()
    args = dl_utils.parse_args(parser, argv)
    process_start = time.perf_counter()
    # Every setting of this run, read from the flags (nanoGPT's habit): it goes into the
    # checkpoint, the JSON and experiments.csv, so a flag you add to build_parser() is
    # recorded with no other edit. --image is a path, not a setting.
    settings = {k: v for k, v in dl_utils.settings_from_args(args).items() if k != "image"}
    settings["optimizer"] = OPTIMIZER
    note = dl_utils.changed_settings(parser, args)  # e.g. "epochs 1, augment": the figures' titles carry it

    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    data = load_data(args, device)                                        # 2
    model = CNN(dropout=args.dropout).to(device)
    description = describe_model(model, data, args.batch_size)           # 3
    model, history, test = train(model, data, args, device)              # 4
    metrics = {"test_accuracy": test["accuracy"], "best_val_accuracy": max(history["val_accuracy"]),
               "train_seconds": sum(history["seconds"])}
    dl_utils.save_checkpoint(args.out_dir / MODEL_FILE, model=model, arch="CNN",
                             model_config={"dropout": args.dropout}, hyperparameters=settings,
                             metrics=metrics, normalization=data.normalization)
    dl_utils.plot_training_history(history, args.out_dir / "cnn_training_history.png", show=args.show,
                                   title=f"CNN on MNIST ({note}): test accuracy {100 * test['accuracy']:.2f}%"
                                         + (f"\nlosses with label smoothing {args.label_smoothing:g}: their floor is "
                                            f"{smoothing_floor(args.label_smoothing):.2f}" if args.label_smoothing else ""))

    what_it_learned(model, data, args.out_dir, show=args.show, note=note)                         # 5
    predictions = where_it_goes_wrong(model, data, device, args.out_dir, show=args.show, note=note)  # 6
    cnn = {"parameters": description["parameters"], "test_accuracy": test["accuracy"],
           "train_seconds": metrics["train_seconds"], "epochs": len(history["epoch"]),
           "val_accuracy": history["val_accuracy"]}
    mlp = compare_with_mlp(cnn, description, args.out_dir, show=args.show, note=note)            # 7
    fgsm_accuracy = fool_it(model, data, predictions, test["accuracy"], args.epsilon, device,   # 8
                            args.out_dir, show=args.show)
    own = {} if args.image is None else read_your_digit(model, args.image, data, device,          # 9
                                                        args.out_dir, show=args.show)

    # The record of this run, built once: what summarize_run keeps for every
    # training script, then what 06's own sections measured.
    results = dl_utils.summarize_run(script="06_cnn_mnist", hyperparameters=settings, history=history,
                                     test_metrics=test, parameters=description["parameters"], device=device)
    results.update(
        fgsm_epsilon=args.epsilon, fgsm_test_accuracy=fgsm_accuracy, **own,
        layer_shapes=description["layer_shapes"], parameters_by_layer=description["parameters_by_layer"],
        multiply_adds_per_image=description["multiply_adds_per_image"], test_mistakes=predictions["n_wrong"],
        most_confused=[{"true": a, "predicted": b, "count": c} for a, b, c in predictions["directed"]],
        most_confused_pairs=[{"digits": [a, b], "count": c} for a, b, c in predictions["pairs"]],
        confusion_matrix=predictions["matrix"].tolist(), mlp_comparison=mlp,
        total_seconds=time.perf_counter() - process_start)
    dl_utils.save_results(args.out_dir, "06_cnn_mnist", results)
    dl_utils.log_experiment(args.out_dir, results)
    print(f"\nSaved {MODEL_FILE}, cnn_training_history.png, cnn_filters.png, cnn_feature_maps.png, "
          f"confusion_matrix.png, misclassified.png, mlp_vs_cnn.png, adversarial_example.png and 06_cnn_mnist.json "
          f"in {args.out_dir} ({results['total_seconds']:.0f}s in all)")
    print("Next: python 07_look_inside.py (what the network computes, step by step), "
          "and python exercises/check.py (the exercises)")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
