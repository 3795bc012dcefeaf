"""dl_utils.py - the course's shared toolbox.

Every numbered lesson imports this file for what the lessons share. Read it
after 03_train_mnist.py: nothing here is magic. Most of it was first written
in a lesson, in front of you, and harvested here afterwards so that later
lessons can reuse it without loading each other (d2l's habit): each such
piece says "written in 03" (or 06), and tests/test_toolbox.py fails if a copy
drifts from the lesson's own.

What lives here, in the order a lesson uses it; [03 05] = the lessons whose code (or whose extras/ file) calls it:

    settings  collect_settings [01 02 03 04 05 06 07], build_parser [01 02 03 04 05 06 07],
              parse_args [01 02 03 04 05 06 07], settings_from_args [01 02 03 04 05 06 07],
              changed_settings [01 02 03 05 06 07], positive_int [05], positive_float [05], non_negative_int [04],
              fraction [06],
              step [01 02 03 04 05 06 07], run [01 02 03 04 05 06 07], note_written,
              CourseError [02 03 04 05 06 07], SCRIPT_DIR, DEFAULT_DATA_DIR, DEFAULT_OUT_DIR, QUICK_SUBSET
    device    get_device [01 02 03 04 05 06 07], set_seed [01 03 04 05 06 07], device_name [01 02 04 05 07],
              fused_adam_works [03 06]
    data      resolve_data_dir [02], MNIST_FILES [02], read_idx, read_mnist [02], missing_data_message,
              damaged_file_message, InMemoryLoader [06], MNISTData [06], split_indices [02], shuffle_pixels,
              normalization_stats [02], load_mnist_data [02 03 04 05 06 07]
    models    SimpleNN [05 06], CNN [04], fgsm_attack [07], build_model [07]
    training  train_one_epoch, evaluate [04 05 06 07], fit [05 06 07], format_epoch [03], nan_message [03],
              collect_predictions [04 05 06], count_parameters [03 04 05 06 07]
    saving    save_checkpoint [03 05 06], load_checkpoint [04 06 07], state_dict_mismatches [07],
              save_results [01 02 03 04 05 06 07], summarize_run [03 05 06], log_experiment [03 05 06],
              machine_info [07]
    comparing read_experiments [05], filter_runs [05], best_runs [05], varying_settings [05],
              accuracy_key [05], accuracy_by_value [05], effects_against_noise [05], format_runs_table [05],
              plot_runs_against [05], RESULT_COLUMNS [05]
    inspect   confusion_matrix [06 07], most_confused_pairs [06 07], misclassified_indices [06]
    own digit prepare_digit_image [04 06], classify_own_digit [04 06], predict_digit [04], format_top_k,
              plot_digit_prediction, center_of_mass, MNIST_SIZE, MNIST_BOX, MNIST_STROKE
    plots     finish_figure [01 02 05 06 07], plot_training_history [03 06], plot_prediction_grid [04 06], HEADLESS

The plumbing a learner need not read lives in course/ (course/__init__.py lists it) and is
re-exported here, so lessons write `dl_utils.X`; course/ never imports this file.

Errors meant for a learner (missing data, a bad checkpoint, a loss that became
NaN) are raised as `CourseError`: Python prints its message and exits with a
non-zero status, without a traceback, because the message IS the lesson.
`python dl_utils.py` checks your set-up (course/setup_check.py).
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as missing:  # say how to fix it, not a traceback (`python dl_utils.py` checks the set-up)
    raise SystemExit(f"{missing.name} is not installed in this Python ({sys.executable}). Activate the course's "
                     "virtual environment, or run `pip install -r requirements.txt` (README.md, Quick start).")

from course.cli import (  # noqa: F401  (re-exported: lessons write dl_utils.X)
    DEFAULT_DATA_DIR, DEFAULT_OUT_DIR, MNIST_FILES, QUICK_SUBSET, SCRIPT_DIR, CourseError, build_parser,
    changed_settings, collect_settings, damaged_file_message, fraction, fused_adam_works, get_device, note_written,
    missing_data_message, non_negative_int, parse_args, positive_float, positive_int, resolve_data_dir, run,
    settings_from_args,
)
from course.lab_notebook import (  # noqa: F401
    RESULT_COLUMNS, accuracy_by_value, accuracy_key, best_runs, effects_against_noise, filter_runs, format_runs_table,
    plot_runs_against, read_experiments, varying_settings,
)
from course.own_digit import (  # noqa: F401
    MNIST_BOX, MNIST_SIZE, MNIST_STROKE, center_of_mass, classify_own_digit, format_top_k, plot_digit_prediction,
    predict_digit, prepare_digit_image,
)
from course.records import (  # noqa: F401  (course.records picks the plot backend before pyplot loads)
    HEADLESS, device_name, finish_figure, log_experiment, machine_info, save_results, summarize_run,
)

import matplotlib.pyplot as plt  # noqa: E402

# ---------------------------------------------------------------------------
# Settings the lessons share: one place for each default
# ---------------------------------------------------------------------------
BATCH_SIZE = 64  # the course's batch size (03's specification); every lesson that trains starts from it
EVAL_BATCH_SIZE = 1000  # evaluation keeps no gradients, so big batches cost little memory: fewer Python steps
SPLIT_SEED = 12345  # the train/validation split never changes with --seed: every run is scored on the same 5,000
VALIDATION_FRACTION = 1 / 12  # 60,000 training images -> 55,000 to learn from + 5,000 to validate on
PIXEL_SEED = 784  # --pixels shuffled: ONE permutation of the 784 positions, the same for every image and run
TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:red"  # one plot style for the whole course: train blue, validation red


def step(title: str) -> None:
    """Print a lesson's step header, the same in every script: `=== 2. Data ===`."""
    print(f"\n=== {title} ===")


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (CUDA's too): the same seed, the same run.

    On the CPU the results are identical run after run; GPUs may differ in
    the last digits (some kernels add numbers in a varying order).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------
# Data: MNIST, read once and held in memory (02 shows how)
# ---------------------------------------------------------------------------
def read_idx(path: str | Path) -> torch.Tensor:
    """Read one MNIST file: a big-endian header, then one byte per pixel or label.

    The IDX format is tiny: a 4-byte "magic number" (2051 for images, 2049
    for labels), then the sizes as 4-byte integers (count, and rows and
    columns for images), then the raw bytes. So 60,000 images take
    16 + 60,000 * 28 * 28 = 47,040,016 bytes. Returns uint8 images
    (N, 28, 28) or int64 labels (N,).
    """
    path = Path(path)
    data = path.read_bytes()
    magic = int.from_bytes(data[:4], "big")
    if magic not in (2051, 2049):
        raise CourseError(damaged_file_message(path, f"it does not start like an MNIST file "
                                                      f"(magic number {magic}, expected 2051 or 2049)"))
    n_dims = 3 if magic == 2051 else 1
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    expected = header + math.prod(shape)
    if len(data) != expected:
        raise CourseError(damaged_file_message(
            path, f"it has {len(data):,} bytes, but its header promises {expected:,}"))
    values = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).reshape(shape)
    return values if magic == 2051 else values.long()


def read_mnist(data_dir: str | Path | None = None, *, train: bool, download: bool = True):
    """Return MNIST as uint8 images (N, 28, 28) and int64 labels (N,).

    The four files live in data_dir/MNIST/raw/. When they are missing,
    torchvision's `datasets.MNIST` downloads them there (checking their
    checksums); after that, we read them with `read_idx`, which also
    notices a damaged file.
    """
    root = resolve_data_dir(data_dir)
    raw = root / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    images_path, labels_path = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    if not (images_path.is_file() and labels_path.is_file()):
        from torchvision import datasets  # imported only to download: it takes about a second

        try:
            datasets.MNIST(root=str(root), train=train, download=download)
        except Exception as error:  # URLError, HTTPError, RuntimeError("Dataset not found"), ...
            raise CourseError(missing_data_message(root, error)) from None
    return read_idx(images_path), read_idx(labels_path)


class InMemoryLoader:
    """Batches from tensors already in memory; iterate it like a DataLoader.

    `for images, labels in loader:` gives images of shape (B, 1, 28, 28) and
    labels of shape (B,); `len(loader)` is the number of batches, the last
    one partial when the data size is not a multiple of the batch size
    (55,000 / 64 = 859 full batches + 1 of 24 = 860). With shuffle=True each
    pass uses a new order drawn from a seeded generator, so a run is
    repeatable. `loader.images` and `loader.labels` are the whole tensors.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 shuffle: bool, seed: int = 0):
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    @property
    def dataset(self) -> torch.utils.data.TensorDataset:  # as a DataLoader has: len(loader.dataset) images
        return torch.utils.data.TensorDataset(self.images, self.labels)

    def __iter__(self):
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.images.device)
        for start in range(0, n, self.batch_size):
            if self.shuffle:
                index = order[start:start + self.batch_size]
                yield self.images[index], self.labels[index]
            else:  # a slice is a view: no copy at all
                yield self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]


@dataclass
class MNISTData:
    """What `load_mnist_data` returns: three loaders and the statistics used."""

    train_loader: InMemoryLoader
    val_loader: InMemoryLoader
    test_loader: InMemoryLoader
    mean: float  # of the training pixels, in [0, 1] units
    std: float

    @property
    def normalization(self) -> dict:
        return {"mean": self.mean, "std": self.std}


def split_indices(n_train_full: int, *, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed, seeded split of the training images into (train, validation) indices."""
    n_val = round(n_train_full * VALIDATION_FRACTION)
    order = torch.randperm(n_train_full, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


def shuffle_pixels(images: torch.Tensor, *, seed: int = PIXEL_SEED) -> torch.Tensor:
    """Move the 784 pixels of every image to new places: one fixed permutation for all.

    (N, 28, 28) -> (N, 28, 28). The digit becomes noise to a person, but no
    information is lost: pixel 17 of every image always lands in the same
    new place. A fully connected layer never used the layout (it sees 784
    numbers in some order), so an MLP learns the shuffled digits as well as
    the real ones; a convolution looks at neighbouring pixels, so a CNN loses
    what made it better ("Convolutions & Pooling" in ML_CONCEPTS_EXPLAINED.md).
    """
    permutation = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(seed))
    return images.reshape(len(images), -1)[:, permutation].reshape(images.shape)


def normalization_stats(images_uint8: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the pixels, after scaling to [0, 1].

    On MNIST's 55,000-image training split these come out as 0.1306 and
    0.3081, next to the numbers printed in every tutorial, 0.1307 and 0.3081
    (those were computed on all 60,000 training images). We compute them
    rather than paste them, and only from training images: looking at
    validation or test data, even for a mean, is a (small) leak.

    A pixel has only 256 possible values, so we count how often each occurs
    (`bincount`) and weight those 256 values by their counts: exact, and no
    43-million-element float copy in memory.
    """
    counts = torch.bincount(images_uint8.flatten(), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = counts.sum()
    mean = (counts * values).sum() / n
    std = ((counts * (values - mean) ** 2).sum() / (n - 1)).sqrt()
    return mean.item(), std.item()


def _normalize(images_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    # (N, 28, 28) uint8 in 0..255 -> (N, 1, 28, 28) float32 with mean 0, std 1.
    # The extra dimension is the colour channel (1: greyscale) that layers
    # such as nn.Conv2d expect. (x / 255 - mean) / std == (x - 255 mean) / (255 std),
    # done in place to avoid temporary copies.
    images = images_uint8.to(torch.float32)
    return images.sub_(255.0 * mean).div_(255.0 * std).unsqueeze(1)


def load_mnist_data(data_dir: str | Path | None = None, *, batch_size: int = BATCH_SIZE, subset: int | None = None,
                    seed: int = 0, device: torch.device | str = "cpu", download: bool = True,
                    normalization: dict | None = None, pixels: str = "natural") -> MNISTData:
    """Train / validation / test loaders for MNIST, normalised once and held in memory (02 builds a batch by hand).

    The 60,000 training images are split once, with a fixed seed, into
    55,000 to learn from and 5,000 to validate on (choosing epochs and
    settings); the 10,000 test images are only for the final number.
    `subset=N` keeps the first N training images (0 or None: all).
    `normalization={"mean": m, "std": s}` reuses the statistics a saved model
    was trained with (04 does) instead of computing them. `pixels="shuffled"`
    moves every pixel by one fixed permutation (`shuffle_pixels`). Why in
    memory rather than a DataLoader: 02 shows both; the timings are in
    docs/PERFORMANCE.md.
    """
    device = torch.device(device)
    train_images, train_labels = read_mnist(data_dir, train=True, download=download)
    test_images, test_labels = read_mnist(data_dir, train=False, download=download)
    if pixels == "shuffled":
        train_images, test_images = shuffle_pixels(train_images), shuffle_pixels(test_images)

    train_idx, val_idx = split_indices(len(train_labels))
    if subset and subset > len(train_idx):
        print(f"--subset {subset:,} is more than the {len(train_idx):,} training images: using all of them.")
    if subset:
        train_idx = train_idx[:subset]
    if normalization is None:
        mean, std = normalization_stats(train_images[train_idx])
    else:
        mean, std = normalization["mean"], normalization["std"]

    def loader(images, labels, size, shuffle):
        return InMemoryLoader(_normalize(images, mean, std).to(device), labels.to(device),
                              batch_size=size, shuffle=shuffle, seed=seed)

    return MNISTData(
        train_loader=loader(train_images[train_idx], train_labels[train_idx], batch_size, True),
        val_loader=loader(train_images[val_idx], train_labels[val_idx], EVAL_BATCH_SIZE, False),
        test_loader=loader(test_images, test_labels, EVAL_BATCH_SIZE, False),
        mean=mean,
        std=std,
    )


# ---------------------------------------------------------------------------
# Models: written in 03 and 06, harvested here for the lessons after them
# ---------------------------------------------------------------------------
# A checkpoint stores numbers, not code: whoever loads it needs the class. These are copies of the
# lessons' own classes (a test keeps them identical); the comments that explain them are in the lessons.
class SimpleNN(nn.Module):  # written in 03
    def __init__(self, hidden: int = 128, dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else None
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x.flatten(start_dim=1))
        if self.norm is not None:
            x = self.norm(x)
        x = self.relu(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc2(x)


class CNN(nn.Module):  # written in 06
    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))
        x = self.relu2(self.pool2(self.conv2(x)))
        x = self.flatten(x)
        x = self.dropout(self.relu3(self.fc1(x)))
        return self.fc2(x)

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What conv1 and conv2 (after a ReLU, before pooling) make of the images x: (B, 32, 28, 28), (B, 64, 14, 14)."""
        conv1 = self.relu1(self.conv1(x))
        conv2 = self.relu2(self.conv2(self.pool1(conv1)))
        return conv1, conv2


def fgsm_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epsilon: float,
                mean: float, std: float) -> torch.Tensor:
    """Adversarial examples by the Fast Gradient Sign Method: x + epsilon * sign(d loss / d x) (written in 06)."""
    model.eval()
    images = images.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    adversarial = images.detach() + (epsilon / std) * gradient.sign()
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    return adversarial.clamp(low, high)


def build_model(checkpoint: dict) -> nn.Module:
    """The empty network a checkpoint's weights fit: its "arch" and "model_config" say which (as 04 teaches)."""
    classes = {"SimpleNN": SimpleNN, "CNN": CNN}
    if checkpoint["arch"] not in classes:
        raise CourseError(f"This checkpoint holds a {checkpoint['arch']!r}; the course can rebuild "
                          f"{' and '.join(classes)} only (from 03 and 06).")
    return classes[checkpoint["arch"]](**checkpoint["model_config"])


# ---------------------------------------------------------------------------
# Training: the loop, written in 03
# ---------------------------------------------------------------------------
# 03_train_mnist.py writes these three functions out and explains every line;
# here they are again, line for line, for 05-07. The one addition is fit's
# `train_epoch`, so 06 can pass its own epoch (the same five steps plus a
# learning-rate schedule step).
def train_one_epoch(model: nn.Module, loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """One pass over the training images; returns the epoch's mean loss and accuracy (written in 03)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        optimizer.zero_grad()
        logits = model(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()

        total_loss += loss.detach() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(labels)
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


def evaluate(model: nn.Module, loader, loss_fn: nn.Module) -> dict:
    """Mean loss and accuracy on `loader`, without training (written in 03)."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for images, labels in loader:
            logits = model(images)
            total_loss += loss_fn(logits, labels) * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


def fit(model: nn.Module, train_loader, val_loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, *,
        epochs: int, patience: int = 0, train_epoch=train_one_epoch) -> dict:
    """Train for `epochs`, validating after each; returns the history (written in 03; 06 passes its own train_epoch)."""
    history = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [], "seconds": []}
    best_loss, best_epoch, best_weights = math.inf, 0, None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train = train_epoch(model, train_loader, loss_fn, optimizer)
        if not math.isfinite(train["loss"]):
            raise CourseError(nan_message(epoch, optimizer))
        val = evaluate(model, val_loader, loss_fn)
        seconds = time.perf_counter() - start
        for key, value in (("epoch", epoch), ("train_loss", train["loss"]), ("train_accuracy", train["accuracy"]),
                           ("val_loss", val["loss"]), ("val_accuracy", val["accuracy"]), ("seconds", seconds)):
            history[key].append(value)
        print(format_epoch(epoch, epochs, train, val, seconds))

        if val["loss"] < best_loss:
            best_loss, best_epoch = val["loss"], epoch
            best_weights = copy.deepcopy(model.state_dict()) if patience else None
        elif patience and epoch - best_epoch >= patience:
            print(f"Early stopping: validation loss has not improved for {patience} epochs; "
                  f"restoring the weights of epoch {best_epoch}.")
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    history["best_epoch"], history["stopped_early"] = best_epoch, epoch < epochs
    return history


def format_epoch(epoch: int, epochs: int, train: dict, val: dict, seconds: float) -> str:
    """One line per epoch, e.g. `Epoch 1/10: train loss 0.28 acc 92.1% | val loss 0.14 acc 95.9% | 1.6s`"""
    return (f"Epoch {epoch}/{epochs}: train loss {train['loss']:.3f} acc {100 * train['accuracy']:.1f}% | "
            f"val loss {val['loss']:.3f} acc {100 * val['accuracy']:.1f}% | {seconds:.1f}s")


def nan_message(epoch: int, optimizer: torch.optim.Optimizer) -> str:
    """The paragraph a learner sees when the training loss becomes NaN (fit raises it)."""
    lr = optimizer.param_groups[0].get("lr")
    return (
        f"The training loss became NaN or infinite in epoch {epoch}, so training stopped: every "
        "weight it touched is now garbage. The usual cause is a learning rate that is too high "
        f"(this run used lr={lr:g}): each step overshoots, the weights grow, the logits overflow, "
        "and the loss explodes (see 'Learning Rate' in ML_CONCEPTS_EXPLAINED.md). "
        "Try a learning rate 10 times smaller, e.g. --lr 0.001 for Adam or --lr 0.01 for SGD."
    )


def collect_predictions(model: nn.Module, loader, *, device: torch.device | str = "cpu"):
    """Run `model` over `loader`; returns (probabilities (N, 10), labels (N,)) on the CPU.

    Softmax turns each row of 10 logits into probabilities that sum to 1;
    the prediction is the argmax and its probability the "confidence".
    """
    model.eval()
    all_probs, all_labels = [], []
    with torch.no_grad():
        for images, labels in loader:
            all_probs.append(torch.softmax(model(images.to(device)), dim=1).cpu())
            all_labels.append(labels.cpu())
    return torch.cat(all_probs), torch.cat(all_labels)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of learnable numbers in `model`: Linear(784, 128) holds 128 x 784 weights + 128 biases = 100,480."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------
# Saving and loading checkpoints (03 saves, 04 loads)
# ---------------------------------------------------------------------------
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, *, model: nn.Module, arch: str, model_config: dict, hyperparameters: dict,
                    metrics: dict, normalization: dict) -> Path:
    """Save a model the course's one way; returns the path.

    The file is a dict: the weights (`state_dict`: layer name -> tensor),
    plus everything needed to rebuild and trust it: the architecture's
    name and config (e.g. {"hidden": 128}), the hyperparameters it was
    trained with, its metrics, the normalisation statistics its inputs
    need, and the torch version. Only plain Python values and tensors go in,
    so `load_checkpoint` can use the safe `weights_only=True` loader.

    Written atomically: first to a temporary file, then renamed over the
    target. A rename is all-or-nothing, so Ctrl-C halfway through never
    leaves a half-written .pth that breaks the next script.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "model_config": dict(model_config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hyperparameters": dict(hyperparameters),
        "metrics": dict(metrics),
        "normalization": dict(normalization),
        "torch_version": str(torch.__version__),  # str: torch's own version class is not a plain value
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return note_written(path)


def _corrupt_message(path: Path, error: Exception, made_by: str) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return (f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {first_line}). "
            f"It may be truncated, corrupted, or not a .pth file at all. Delete it and run {made_by} again.")


def load_checkpoint(path: str | Path, *, made_by: str = "03_train_mnist.py") -> dict:
    """Load a checkpoint written by `save_checkpoint`, safely.

    A .pth file is a Python pickle, and unpickling can run any code its author
    put in it: `weights_only=True` allows only tensors and plain containers.
    Missing, corrupt or foreign files raise a CourseError saying what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CourseError(
            f"No checkpoint at {path}. It is written by {made_by}: run `python {made_by}` first "
            "(add --data-dir if your MNIST is elsewhere), or point --model at an existing .pth file."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not refused objects: broken bytes
            raise CourseError(_corrupt_message(path, error, made_by)) from None
        raise CourseError(
            f"{path} contains Python objects, not just tensors (for example a whole model saved with "
            "torch.save(model)), and the safe loader refuses to unpickle them because unpickling can run "
            "arbitrary code. The course saves state_dicts with dl_utils.save_checkpoint. If you made this "
            f"file yourself and trust it, load it with torch.load(..., weights_only=False); otherwise run {made_by}."
        ) from None
    except Exception as error:
        raise CourseError(_corrupt_message(path, error, made_by)) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "arch" not in checkpoint:
        raise CourseError(
            f"{path} is a PyTorch file but not a course checkpoint: it lacks the 'arch' and 'state_dict' "
            f"entries that save_checkpoint writes. Run {made_by} to make one."
        )
    return checkpoint


def state_dict_mismatches(model: nn.Module, state_dict: dict) -> list[str]:
    """What stops `model.load_state_dict(state_dict)`, one line per problem.

    A state_dict maps layer names ("fc1.weight") to tensors. Loading needs
    the same names with the same shapes, so the architecture must match
    the one that was saved. An empty list means it will load.
    """
    own = model.state_dict()
    lines = [f"{name}: saved {tuple(state_dict[name].shape)}, your model {tuple(own[name].shape)}"
             for name in own if name in state_dict and own[name].shape != state_dict[name].shape]
    lines += [f"{name}: in your model, not in the checkpoint" for name in own if name not in state_dict]
    lines += [f"{name}: in the checkpoint, not in your model" for name in state_dict if name not in own]
    return lines


# ---------------------------------------------------------------------------
# Looking inside a classifier: which digits it confuses (06)
# ---------------------------------------------------------------------------
def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Counts of (true class, predicted class): a (num_classes, num_classes) tensor.

    Row = the true digit, column = what the model said, so the diagonal holds
    the correct answers and every other cell one kind of mistake: accuracy
    says HOW OFTEN the model is wrong, this table says WHICH digits it takes
    for which. `labels * 10 + predictions` gives each (true, predicted) pair
    its own number 0..99, so one `bincount` fills all 100 cells at once.
    """
    predictions = torch.as_tensor(predictions).reshape(-1).long().cpu()
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    cells = torch.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return cells.reshape(num_classes, num_classes)


def most_confused_pairs(matrix: torch.Tensor, k: int = 3, *, both_ways: bool = False) -> list[tuple]:
    """The k most frequent mistakes in a confusion matrix, as (a, b, count), most first.

    (a, b) means "true a, predicted b"; with `both_ways=True` a 4 read as 9 and
    a 9 read as 4 count as one pair (a < b). Ties are listed in digit order.
    """
    matrix = torch.as_tensor(matrix).long().cpu()
    if both_ways:
        matrix = torch.triu(matrix + matrix.T, diagonal=1)  # a->b + b->a, each pair once
    matrix = matrix - torch.diag(torch.diag(matrix))  # correct answers are not confusions
    n = matrix.shape[0]
    cells = [(int(matrix[a, b]), a, b) for a in range(n) for b in range(n) if matrix[a, b] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(a, b, count) for count, a, b in cells[:k]]


def misclassified_indices(probabilities: torch.Tensor, labels: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Indices of the wrong predictions, the most confident mistakes first (at most k): the most instructive ones."""
    confidence, predictions = probabilities.max(dim=1)
    wrong = (predictions != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order][:k]


# ---------------------------------------------------------------------------
# Plots: one style for the whole course
# ---------------------------------------------------------------------------
def plot_training_history(history: dict, path: str | Path, *, title: str = "Training history",
                          show: bool = False) -> Path:
    """Loss and accuracy per epoch, side by side: train in blue, validation in red.

    How to read it: both curves falling and close together is a good fit;
    training loss still falling while validation loss rises is overfitting;
    both high and flat is underfitting; a jagged or rising training loss
    means the learning rate is too high. The accuracy axis always spans at
    least 10 points, so a gap of a few tenths does not look like a cliff;
    with early stopping, the kept epoch is marked.
    """
    epochs = history["epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_loss.plot(epochs, history["train_loss"], "o-", color=TRAIN_COLOR, label="train")
    ax_loss.plot(epochs, history["val_loss"], "o-", color=VAL_COLOR, label="validation")
    ax_loss.set(title="Loss (lower is better)", xlabel="epoch", ylabel="loss")
    accuracies = [100 * a for a in history["train_accuracy"] + history["val_accuracy"]]
    ax_acc.plot(epochs, [100 * a for a in history["train_accuracy"]], "o-", color=TRAIN_COLOR, label="train")
    ax_acc.plot(epochs, [100 * a for a in history["val_accuracy"]], "o-", color=VAL_COLOR, label="validation")
    top = min(100.0, max(accuracies) + 1)
    ax_acc.set_ylim(max(0.0, min(min(accuracies) - 1, top - 10)), top)
    ax_acc.set(title="Accuracy (higher is better)", xlabel="epoch", ylabel="accuracy (%)")
    if history.get("stopped_early"):
        for ax in (ax_loss, ax_acc):
            ax.axvline(history["best_epoch"], color="grey", linestyle="--",
                       label=f"kept: epoch {history['best_epoch']} (best val loss)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return finish_figure(fig, path, show=show)


def plot_prediction_grid(images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor,
                         path: str | Path, *, mean: float, std: float, title: str,
                         columns: int = 6, show: bool = False) -> Path:
    """A gallery of digits, each titled with prediction, confidence and truth.

    `images` are normalised (N, 1, 28, 28) tensors; we undo the normalisation
    (x * std + mean) to show the pixels as they were. Correct predictions are
    titled in green, mistakes in red, so errors jump out.
    """
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, probs in zip(axes.flat, images, labels, probabilities):
        predicted = int(probs.argmax())
        ax.imshow((image.squeeze(0) * std + mean).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"pred {predicted} ({100 * probs.max():.0f}%)\ntrue {int(label)}", fontsize=10,
                     color="tab:green" if predicted == int(label) else "tab:red")
    fig.suptitle(title)
    return finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# `python dl_utils.py`: check your set-up (course/setup_check.py)
# ---------------------------------------------------------------------------
if __name__ == "__main__":
    from course.setup_check import main as check_setup

    sys.exit(check_setup())
