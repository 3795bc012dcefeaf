"""dl_utils.py - the course's shared toolbox.

Every numbered script imports this file instead of repeating the same plumbing.
Read it once after 03_train_mnist.py: nothing here is magic, and the training
loop in `train_epoch` is THE loop the whole course uses.

What lives here, in the order a script uses it:

    settings     add_common_args, positive_int, positive_float
    device       get_device, set_seed
    data         load_mnist_data (fast, in memory), standard_mnist_loaders (the usual way)
    training     train_epoch, evaluate_model, train_model, collect_predictions
    models       count_parameters, to_channels_last (a CNN speed-up on the CPU)
    saving       save_checkpoint, load_checkpoint, save_results, log_experiment
    comparing    read_experiments, filter_runs, best_runs, accuracy_by_value, format_runs_table,
                 plot_runs_against
    inspecting   confusion_matrix, most_confused_pairs, misclassified_indices
    own digit    prepare_digit_image, predict_digit, format_top_k, plot_digit_prediction
    plots        plot_training_history, plot_confusion_matrix, finish_figure

Errors meant for a learner (missing data, a bad checkpoint, a loss that became
NaN) are raised as `CourseError`: Python prints its message and exits with a
non-zero status, without a traceback, because the message IS the lesson.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------------------
# Paths: data/ and outputs/ sit next to the scripts, wherever you run them from
# ---------------------------------------------------------------------------
# `Path(__file__)` is this file, so `python course/03_train_mnist.py` from
# another folder still finds course/data and writes course/outputs.
SCRIPT_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = SCRIPT_DIR / "data"
DEFAULT_OUT_DIR = SCRIPT_DIR / "outputs"

# A fixed seed for the train/validation split, separate from --seed: changing
# --seed then changes the initial weights and the shuffling, but every run is
# still scored on the same 5,000 validation images, so runs stay comparable.
SPLIT_SEED = 12345

# 60,000 training images -> 55,000 to learn from + 5,000 to validate on (1/12).
VALIDATION_FRACTION = 1 / 12

# Evaluation needs no gradients, so memory per image is small: big batches
# mean fewer Python round trips and the same numbers.
EVAL_BATCH_SIZE = 1000

# --quick trains 1 epoch on this many images: enough to watch learning happen.
QUICK_SUBSET = 5000

# --pixels shuffled uses ONE permutation of the 784 pixel positions, the same
# for every image and every run, drawn from this seed.
PIXEL_SEED = 784

# Plots: draw into files when there is no screen (a server, CI, an SSH
# session); "Agg" is matplotlib's file-only backend. With a screen, --show can
# open windows. This must happen before pyplot is imported anywhere.
_HEADLESS = sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
)
if _HEADLESS:
    matplotlib.use("Agg")

TRAIN_COLOR = "tab:blue"  # one plot style for the whole course: train is blue,
VAL_COLOR = "tab:red"  # validation is red, in every figure.


class CourseError(SystemExit):
    """A problem the learner can fix, explained in one paragraph.

    It is a SystemExit, so when it reaches the top of a script Python prints
    the message (no traceback) and exits with status 1. Tests catch it like
    any exception: `with pytest.raises(CourseError)`.
    """


# ---------------------------------------------------------------------------
# Settings: the flags every script shares (course/cli.py)
# ---------------------------------------------------------------------------
# Plumbing a learner need not read: argparse types such as positive_int,
# add_common_args (--data-dir, --out-dir, --seed, --epochs, --lr, ...),
# parse_args (--quick, and the --out-dir check before anything is trained),
# settings_from_args (every flag, recorded), and run (Ctrl-C and crashes end
# with one paragraph). Imported here so a lesson writes dl_utils.add_common_args.
from course.cli import (  # noqa: E402
    add_common_args, changed_settings, fraction, note_written, parse_args, positive_float, positive_int,
    run, settings_from_args,
)

# ---------------------------------------------------------------------------
# Device and seeds
# ---------------------------------------------------------------------------
def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def get_device(preference: str = "auto") -> tuple[torch.device, str]:
    """Pick where the maths runs and say why: returns (device, reason).

    "auto" tries an NVIDIA GPU (CUDA), then an Apple-silicon GPU (MPS), then
    the CPU, which always works. Asking for a device that is not there is a
    CourseError rather than a silent fall-back: you asked for a reason.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"auto: found the CUDA GPU {torch.cuda.get_device_name(0)}"
        if _mps_available():
            return torch.device("mps"), "auto: found an Apple-silicon GPU (MPS)"
        return torch.device("cpu"), f"auto: no CUDA or MPS GPU found, using the CPU ({torch.get_num_threads()} threads)"
    if preference == "cpu":
        return torch.device("cpu"), f"asked for the CPU ({torch.get_num_threads()} threads)"
    if preference == "cuda":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"asked for CUDA: {torch.cuda.get_device_name(0)}"
        raise CourseError(
            "You asked for --device cuda, but PyTorch sees no CUDA GPU here "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
            "Either this machine has no NVIDIA GPU, its driver is missing, or this is a CPU-only "
            "build of PyTorch. Run with --device auto (or cpu) instead; every script works on the CPU."
        )
    if preference == "mps":
        if _mps_available():
            return torch.device("mps"), "asked for the Apple-silicon GPU (MPS)"
        raise CourseError(
            "You asked for --device mps, but the Apple-silicon GPU backend is not available "
            "(it needs a Mac with an M-series chip and macOS 12.3+). "
            "Run with --device auto (or cpu) instead."
        )
    raise CourseError(f"Unknown device {preference!r}: choose one of auto, cpu, cuda, mps.")


def device_name(device: torch.device) -> str:
    """A human name for the results files: "cpu (2 threads)", "cuda (NVIDIA H100 80GB HBM3)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def set_seed(seed: int) -> None:
    """Seed every random number generator the course uses.

    Python's `random`, NumPy and PyTorch each keep their own generator;
    `torch.manual_seed` also seeds every CUDA device. With the same seed on
    the CPU you get identical weights, shuffles and results, run after run.
    (GPUs may still differ in the last digits: some of their kernels add
    numbers in a varying order.)
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------
# Data: MNIST, read once and held in memory
# ---------------------------------------------------------------------------
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Where MNIST lives: --data-dir, else $DL_DATA_DIR, else data/ beside the scripts."""
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get("DL_DATA_DIR"):
        return Path(os.environ["DL_DATA_DIR"]).expanduser().resolve()
    return DEFAULT_DATA_DIR


def _missing_data_message(root: Path, error: Exception) -> str:
    raw = root / "MNIST" / "raw"
    files = ", ".join(MNIST_FILES)
    reason = " ".join(str(error).split())  # one line, however many mirrors torchvision tried
    reason = reason if len(reason) < 160 else reason[:157] + "..."
    return (
        f"Could not find or download MNIST ({type(error).__name__}: {reason}). "
        f"The scripts look for the four MNIST files in {raw}/ and download them when they "
        "are missing, which fails when you are offline or the mirrors are down. "
        f"To fix it, get the four files ({files}; from the .gz files on any MNIST mirror, "
        f"decompressed with gunzip) on a machine that has internet, put them in {raw}/, and "
        "run again; or keep them anywhere as <folder>/MNIST/raw/ and pass --data-dir <folder> "
        "(or set DL_DATA_DIR=<folder>)."
    )


def _damaged_file_message(path: Path, problem: str) -> str:
    return (f"The MNIST file {path} is damaged: {problem}. This happens when a download was cut "
            "off or the file was copied only in part. To fix it, delete that file and run again "
            "(it is downloaded again when you are online), or copy a good one in its place "
            "(`python dl_utils.py` checks all four).")


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one MNIST file: a big-endian header, then one byte per pixel or label.

    The IDX format is tiny: a 4-byte "magic number" (2051 for images, 2049
    for labels), then the sizes as 4-byte integers (count, and rows and
    columns for images), then the raw bytes. So 60,000 images take
    16 + 60,000 * 28 * 28 = 47,040,016 bytes. Reading them ourselves takes a
    few milliseconds and spares importing torchvision (about a second) on
    every run. Returns uint8 images (N, 28, 28) or int64 labels (N,).
    """
    path = Path(path)
    data = path.read_bytes()
    magic = int.from_bytes(data[:4], "big")
    if magic not in (2051, 2049):
        raise CourseError(_damaged_file_message(path, f"it does not start like an MNIST file "
                                                      f"(magic number {magic}, expected 2051 or 2049)"))
    n_dims = 3 if magic == 2051 else 1
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    expected = header + math.prod(shape)
    if len(data) != expected:
        raise CourseError(_damaged_file_message(
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
            raise CourseError(_missing_data_message(root, error)) from None
    return read_idx(images_path), read_idx(labels_path)


class InMemoryLoader:
    """Batches from tensors already in memory; iterate it like a DataLoader.

    `for images, labels in loader:` gives images of shape (B, 1, 28, 28) and
    labels of shape (B,); `len(loader)` is the number of batches, the last
    one partial when the data size is not a multiple of the batch size
    (55,000 / 64 = 859 full batches + 1 of 24 = 860). With shuffle=True each
    pass uses a new order drawn from a seeded generator, so a run is
    repeatable. `loader.dataset` is a TensorDataset, as with a DataLoader.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 shuffle: bool, seed: int = 0):
        self.dataset = torch.utils.data.TensorDataset(images, labels)
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

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
    (`bincount`) and take the mean and std of those 256 values weighted by
    their counts: exact, and no 43-million-element float copy in memory.
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


def load_mnist_data(
    data_dir: str | Path | None = None,
    *,
    batch_size: int = 64,
    subset: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    download: bool = True,
    normalization: dict | None = None,
    pixels: str = "natural",
) -> MNISTData:
    """Train / validation / test loaders for MNIST, held in memory.

    The split: the 60,000 training images are divided once, with a fixed
    seed, into 55,000 for training and 5,000 for validation (to choose
    epochs and settings); the 10,000 test images are used only for the final
    number. `subset=N` keeps only the first N training images (quick runs).
    `normalization={"mean": m, "std": s}` reuses the statistics a saved
    model was trained with (04 does) instead of computing them.
    `pixels="shuffled"` moves every pixel to a new place by one fixed
    permutation (`shuffle_pixels`), the same for train, validation and test.

    Why in memory: the usual pipeline (see `standard_mnist_loaders`) turns
    each image into a tensor and normalises it in Python, one image at a
    time, every epoch: 60,000 small Python calls per epoch. Measured on a
    2-core CPU (benchmarks/bench_training.py, README "Performance"), that
    made an epoch of 03 about ten times slower: the data work, not the MLP,
    took most of the time. All of MNIST as float32 is only
    70,000 x 784 x 4 bytes = 220 MB, so we normalise it once, keep one tensor,
    and a batch is just `images[index]`. On a GPU the whole tensor moves to
    the GPU once, so no batch ever crosses the PCIe bus again. The trade-off:
    this only works while the data set fits in memory, and it does no random
    augmentation per image; for big data sets the DataLoader is the tool.
    """
    device = torch.device(device)
    train_images, train_labels = read_mnist(data_dir, train=True, download=download)
    test_images, test_labels = read_mnist(data_dir, train=False, download=download)
    if pixels == "shuffled":
        train_images, test_images = shuffle_pixels(train_images), shuffle_pixels(test_images)

    train_idx, val_idx = split_indices(len(train_labels))
    if subset is not None and subset > len(train_idx):
        print(f"--subset {subset:,} is more than the {len(train_idx):,} training images: using all of them.")
    if subset is not None:
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


def standard_mnist_loaders(
    data_dir: str | Path | None = None,
    *,
    batch_size: int = 64,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    num_workers: int = 0,
):
    """The pipeline you will meet in most tutorials, for comparison.

        transform = transforms.Compose([
            transforms.ToTensor(),                 # PIL image 0..255 -> float tensor 0..1, (1, 28, 28)
            transforms.Normalize((0.1307,), (0.3081,)),
        ])
        dataset = datasets.MNIST(root, train=True, transform=transform)
        loader = DataLoader(dataset, batch_size=64, shuffle=True)

    Every image goes through PIL and the transforms on every epoch. Flexible
    (random augmentation per image, data sets larger than memory), but slow
    for a small data set like MNIST. Same split, subset and statistics as
    `load_mnist_data`, so the two can be compared fairly
    (benchmarks/bench_training.py does). Returns (train, val, test) loaders.
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    root = resolve_data_dir(data_dir)
    train_images, _ = read_mnist(root, train=True, download=download)
    train_idx, val_idx = split_indices(len(train_images))
    if subset is not None:
        train_idx = train_idx[:subset]
    mean, std = normalization_stats(train_images[train_idx])
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    full_train = datasets.MNIST(str(root), train=True, transform=transform)
    test_set = datasets.MNIST(str(root), train=False, transform=transform)
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(Subset(full_train, train_idx.tolist()), batch_size=batch_size, shuffle=True,
                   generator=generator, num_workers=num_workers),
        DataLoader(Subset(full_train, val_idx.tolist()), batch_size=EVAL_BATCH_SIZE, num_workers=num_workers),
        DataLoader(test_set, batch_size=EVAL_BATCH_SIZE, num_workers=num_workers),
    )


# ---------------------------------------------------------------------------
# Training: THE five-step loop
# ---------------------------------------------------------------------------
def _progress(iterable, *, total: int, desc: str, enabled: bool | None):
    """Wrap with a tqdm progress bar when stdout is a terminal (quiet in logs and tests)."""
    if enabled is None:
        enabled = sys.stdout.isatty()
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar, same training
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch")


def _nan_message(where: str, optimizer: torch.optim.Optimizer) -> str:
    lr = optimizer.param_groups[0].get("lr")
    return (
        f"The training loss became NaN or infinite ({where}), so training stopped: every "
        "weight it touched is now garbage. The usual cause is a learning rate that is too high "
        f"(this run used lr={lr:g}): each step overshoots, the weights grow, the logits overflow, "
        "and the loss explodes (see 'Learning Rate' in ML_CONCEPTS_EXPLAINED.md). "
        "Try a learning rate 10 times smaller, e.g. --lr 0.001 for Adam or --lr 0.01 for SGD."
    )


def train_epoch(
    model: nn.Module,
    train_loader,
    *,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
    scheduler=None,
    progress: bool | None = None,
    desc: str = "training",
) -> dict:
    """One pass over the training data; returns {"loss", "accuracy"} (means).

    Every gradient-based model in this course learns with these five steps,
    repeated for each batch:

        1. optimizer.zero_grad()   gradients ADD UP across backward() calls
                                   by default, so clear last batch's first
        2. logits = model(images)  forward pass: (B, 1, 28, 28) -> (B, 10) scores
        3. loss = loss_fn(logits, labels)   one number: how wrong we are
        4. loss.backward()         backpropagation: d(loss)/d(weight) for every weight
        5. optimizer.step()        move each weight a little against its gradient

    `scheduler` (optional) is stepped after every batch, for schedules such as
    OneCycleLR that change the learning rate within an epoch. The returned
    loss and accuracy are averaged over the epoch while the weights were
    still changing, so they lag behind a clean evaluation at its end.
    """
    model.train()  # switches dropout and batch norm to their training behaviour
    # Running totals stay on the device: calling .item() on every batch
    # would make a GPU wait for each step to finish before starting the next.
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for images, labels in _progress(train_loader, total=len(train_loader), desc=desc, enabled=progress):
        images, labels = images.to(device), labels.to(device)  # no-op when already there

        optimizer.zero_grad()  # 1.
        logits = model(images)  # 2.
        loss = loss_fn(logits, labels)  # 3.
        loss.backward()  # 4.
        optimizer.step()  # 5.
        if scheduler is not None:
            scheduler.step()

        batch = len(labels)
        total_loss += loss.detach() * batch  # loss is a mean over the batch; undo that to sum
        total_correct += (logits.argmax(dim=1) == labels).sum()
        seen += batch
    mean_loss = total_loss.item() / seen
    if not math.isfinite(mean_loss):
        raise CourseError(_nan_message(desc, optimizer))
    return {"loss": mean_loss, "accuracy": total_correct.item() / seen}


def evaluate_model(model: nn.Module, loader, *, loss_fn: nn.Module | None = None,
                   device: torch.device | str = "cpu") -> dict:
    """Mean loss and accuracy of `model` on `loader`; returns {"loss", "accuracy"}.

    `model.eval()` turns dropout off and makes batch norm use its running
    statistics; `torch.inference_mode()` (a stricter `torch.no_grad()`) skips
    recording the graph that backward() would need: less memory, more speed,
    and no chance of training by mistake. The loss is NaN when no loss_fn is
    given. The sums stay on the device until the end: one wait for a GPU,
    not one per batch.
    """
    model.eval()
    total_loss, total_correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            if loss_fn is not None:
                total_loss = total_loss + loss_fn(logits, labels) * len(labels)
            total_correct = total_correct + (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
    return {"loss": float(total_loss) / seen if loss_fn is not None else float("nan"),
            "accuracy": int(total_correct) / seen}


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


def format_epoch(epoch: int, epochs: int, train: dict, val: dict, seconds: float) -> str:
    """One line per epoch, e.g. `Epoch 1/10: train loss 0.28 acc 92.1% | val loss 0.14 acc 95.9% | 1.6s`"""
    return (f"Epoch {epoch}/{epochs}: train loss {train['loss']:.3f} acc {100 * train['accuracy']:.1f}% | "
            f"val loss {val['loss']:.3f} acc {100 * val['accuracy']:.1f}% | {seconds:.1f}s")


def train_model(
    model: nn.Module,
    train_loader,
    val_loader,
    *,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device | str = "cpu",
    scheduler=None,
    patience: int | None = None,
    epoch_fn=None,
    log=print,
) -> dict:
    """Train for `epochs`, validating after each; returns the history.

    `epoch_fn(model, train_loader, loss_fn, optimizer)` trains one epoch and
    returns {"loss", "accuracy"}: 03 passes the loop it writes out itself
    (`train_one_epoch`); by default it is `train_epoch` above (with
    `scheduler` and a progress bar), which 05 and 06 use. Either way this
    function adds what every lesson shares: validation after each epoch,
    the history, the NaN check, early stopping and a clear Ctrl-C.

    The history is a dict of lists, one entry per epoch: "epoch",
    "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds".
    `log` receives one line per epoch (pass `log=None` for silence).

    Early stopping: with `patience=N`, training stops once the validation
    loss has not improved for N epochs in a row, and the weights from the
    best epoch are put back, so the model you keep is the one that
    generalised best, not the last one. The history then also holds
    "best_epoch" and "stopped_early".
    """
    if epoch_fn is None:
        def epoch_fn(model, loader, loss_fn, optimizer):
            return train_epoch(model, loader, loss_fn=loss_fn, optimizer=optimizer, device=device,
                               scheduler=scheduler, desc=f"epoch {epoch}/{epochs}")

    history = {key: [] for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")}
    best_loss, best_state, best_epoch = math.inf, None, 0
    epoch = 1
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            train = epoch_fn(model, train_loader, loss_fn, optimizer)
            val = evaluate_model(model, val_loader, loss_fn=loss_fn, device=device)
            if not math.isfinite(train["loss"]):
                raise CourseError(_nan_message(f"epoch {epoch}", optimizer))
            seconds = time.perf_counter() - start
            for key, value in (("epoch", epoch), ("train_loss", train["loss"]), ("train_accuracy", train["accuracy"]),
                               ("val_loss", val["loss"]), ("val_accuracy", val["accuracy"]), ("seconds", seconds)):
                history[key].append(value)
            if log:
                log(format_epoch(epoch, epochs, train, val, seconds))

            if val["loss"] < best_loss:
                best_loss, best_epoch = val["loss"], epoch
                if patience is not None:  # a copy, not a reference: training goes on changing the weights
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif patience is not None and epoch - best_epoch >= patience:
                if log:
                    log(f"Early stopping: validation loss has not improved for {patience} epochs; "
                        f"restoring the weights of epoch {best_epoch}.")
                break
    except KeyboardInterrupt:  # Ctrl-C: say where it happened (dl_utils.run prints it)
        raise KeyboardInterrupt(f"during epoch {epoch} of {epochs}") from None
    history["best_epoch"] = best_epoch
    history["stopped_early"] = patience is not None and history["epoch"][-1] < epochs
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of learnable numbers in `model`.

    A Linear(784, 128) layer holds a 128 x 784 weight matrix plus 128 biases:
    100,480 numbers. Summing `p.numel()` over `model.parameters()` counts
    them all; buffers such as batch norm's running mean are not parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------
# Saving: checkpoints, results, the experiment log
# ---------------------------------------------------------------------------
CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    arch: str,
    model_config: dict,
    hyperparameters: dict,
    metrics: dict,
    normalization: dict,
) -> Path:
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

    A .pth file is a Python pickle, and unpickling can run any code the file's
    author put in it. `weights_only=True` restricts torch.load to tensors and
    plain containers, so a checkpoint from the internet cannot take over your
    machine. Missing, corrupt or foreign files raise a CourseError saying
    what to do (`made_by` names the script that writes this file).
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


def import_script(name: str):
    """Import a numbered lesson script (e.g. "03_train_mnist") as a module.

    `import 03_train_mnist` is a syntax error (names cannot start with a
    digit), so we load the file with importlib. The module is registered in
    sys.modules so that pickle can find its classes again. Its `main()` does
    not run: that only happens under `if __name__ == "__main__":`.
    """
    import importlib.util

    module_name = "lesson_" + name
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPT_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# The results JSON and the experiments.csv log: course/records.py.
from course.records import log_experiment, machine_info, save_results, summarize_run  # noqa: E402

# Reading experiments.csv back (05 --compare-runs): course/lab_notebook.py.
from course.lab_notebook import (  # noqa: E402
    RESULT_COLUMNS, accuracy_by_value, best_runs, filter_runs, format_runs_table, plot_runs_against,
    read_experiments, varying_settings,
)


# ---------------------------------------------------------------------------
# Robustness: data augmentation and adversarial examples
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


# ---------------------------------------------------------------------------
# Looking inside a classifier: which digits it confuses, which it gets wrong
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

    By default (a, b) means "true a, predicted b", one direction only. With
    `both_ways=True` a 4 read as 9 and a 9 read as 4 are added into one pair
    (a < b): the digits the model finds hard to tell apart. Pairs with no
    mistake are left out; ties are listed in digit order.
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
    """Indices of the wrong predictions, the most confident mistakes first (at most k).

    A model that is 99% sure and wrong is the most instructive mistake: the
    digit is often badly written, cut off, or even labelled wrongly in the
    data set. Pass the result to `plot_prediction_grid` for a gallery.
    """
    confidence, predictions = probabilities.max(dim=1)
    wrong = (predictions != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order][:k]


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store a CNN's weights in the "channels last" memory layout; returns the model.

    Why: a convolution combines all the channels of one pixel at once. By
    default PyTorch stores an image batch as (N, C, H, W): channel after
    channel, so the 32 values of one pixel lie far apart in memory.
    `channels_last` keeps the same shape and indexing (x[n, c, h, w] still
    works) but stores the numbers as (N, H, W, C), the channels of a pixel
    side by side, which the CPU's convolution code (oneDNN) reads much
    faster. The maths, and so the accuracy, is unchanged. Measured on the
    course's 2-core CPU (benchmarks/bench_training.py, 3 runs), a training
    step of 06's CNN at batch 64 took 23-27 ms with the default layout and
    17-20 ms with channels_last; an epoch 24.1 s against 16.1 s (medians). Only the 4-D conv weights change; the input needs
    no conversion because an MNIST image has 1 channel, where both layouts
    are the same bytes, and every later activation follows the weights.
    """
    return model.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------
# Your own digit: from any picture to MNIST's 28x28
# ---------------------------------------------------------------------------
# A network only knows the kind of pictures it was trained on. Every MNIST
# digit was made the same way (LeCun et al., 1998): white ink on black, the
# digit scaled so its longest side is 20 pixels (keeping its shape), then
# placed in a 28x28 field so that its centre of mass sits in the middle.
# A phone photo of a digit on paper is nothing like that: dark ink on light,
# uneven lighting, 3000 pixels, anywhere in the frame. prepare_digit_image
# repeats MNIST's recipe on your picture; skip a step and accuracy drops.
MNIST_BOX = 20  # longest side of the digit in an MNIST image, in pixels
MNIST_SIZE = 28  # the whole image: the digit plus a 4-pixel black margin
MNIST_STROKE = 0.12  # MNIST's strokes are about 12% of the digit's longest side wide (median, measured)
_WORK_SIZE = 400  # we clean the picture at this size (longest side): sharp enough, and fast
_DISPLAY_SIZE = 1024  # the `original` returned for plotting is at most this big
_IMAGE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP"


def _read_greyscale(path: Path) -> np.ndarray:
    """Open any picture Pillow can read as a greyscale array: 0.0 black ... 1.0 white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise CourseError(
            f"No picture at {path}{' (that is a folder)' if path.is_dir() else ''}. Check the spelling and "
            f"the folder (relative paths start from {Path.cwd()}), then pass the file, e.g. --image my_digit.png."
        )
    try:
        with Image.open(path) as image:
            image.draft("RGB", (2 * _DISPLAY_SIZE, 2 * _DISPLAY_SIZE))  # JPEG: decode a 12 MP photo at 1/4 size, fast
            image = ImageOps.exif_transpose(image)  # phones store "rotate me" in the file; apply it
            image.load()
    except UnidentifiedImageError:
        raise CourseError(
            f"{path} is not a picture Pillow can read (its content is not {_IMAGE_FORMATS}, whatever its name "
            "says). Save your digit as a PNG or JPEG from your paint program or phone, and pass that file."
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise CourseError(f"Could not read the picture {path} ({type(error).__name__}: {error}). It may be "
                          "truncated or damaged: export it again as a PNG or JPEG.") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greyscale
        pixels = np.asarray(image, dtype=np.float64)
        return np.clip(pixels / (65535.0 if pixels.max() > 255 else 255.0), 0, 1)
    transparent = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if transparent else "L")
    image.thumbnail((2 * _DISPLAY_SIZE, 2 * _DISPLAY_SIZE))  # plenty for a 20-pixel digit, and fast
    if transparent:
        # A transparent PNG from a paint program: the strokes are opaque, the
        # rest is see-through with any colour underneath. Put it on white
        # (or on black, if the strokes themselves are light) so it looks as
        # it did on screen.
        rgba = np.asarray(image, dtype=np.float64) / 255.0
        alpha, grey = rgba[..., 3], rgba[..., :3] @ [0.299, 0.587, 0.114]
        strokes_are_light = (grey * alpha).sum() > 0.5 * alpha.sum()
        backdrop = 0.0 if strokes_are_light else 1.0
        return grey * alpha + backdrop * (1 - alpha)
    return np.asarray(image, dtype=np.float64) / 255.0  # "L": luminance, the greyscale of TVs


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float array to (height, width) with Pillow's anti-aliased Lanczos filter."""
    from PIL import Image

    image = Image.fromarray(array.astype(np.float32))  # mode "F": 32-bit float pixels
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.LANCZOS), dtype=np.float64)


def _fit(array: np.ndarray, longest: int) -> np.ndarray:
    """Resize so the longest side is `longest` pixels, keeping the aspect ratio."""
    height, width = array.shape
    scale = longest / max(height, width)
    return _resize(array, (max(1, round(height * scale)), max(1, round(width * scale))))


def _filter(array: np.ndarray, size: int, reduce) -> np.ndarray:
    """Sliding-window `reduce` (np.min, np.max, np.mean) over size x size squares, edges repeated.

    A square window equals a row window followed by a column window, so we
    do two cheap 1-D passes instead of one size*size pass.
    """
    if size <= 1:
        return array
    before, after = (size - 1) // 2, size // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(array, pad, mode="edge"), size, axis=axis)
        array = reduce(windows, axis=-1)
    return array


def _otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold: the cut that best splits the values into two groups (ink, paper).

    Tries every cut of a 256-bin histogram and keeps the one with the largest
    variance BETWEEN the two groups, which is the same as the smallest spread
    WITHIN each. No tuning, and it adapts to faint pencil as well as thick marker.
    """
    counts, edges = np.histogram(values, bins=256, range=(0.0, max(float(values.max()), 1e-6)))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)  # pixels at or below each cut
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1 + int(np.argmax(between[:-1]))])


def _paper_surface(work: np.ndarray) -> np.ndarray:
    """The brightness of the paper at every pixel, as a smooth quadratic surface.

    Least squares fits a + bx + cy + dx^2 + exy + fy^2 to the pixels. Ink is
    brighter than the fit (the picture is white-on-black by now), so we drop
    every pixel well above the surface and fit again: after a few rounds only
    paper is left. A quadratic can follow a lighting gradient or a darker
    corner, but not a pen stroke, however thick.
    """
    def basis(height, width):
        y, x = np.mgrid[0:height, 0:width]
        x, y = x / width - 0.5, y / height - 0.5
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)

    small = _fit(work, 64)  # the paper changes slowly: 64 pixels a side are enough
    features, values = basis(*small.shape), small.ravel()
    paper = np.ones(values.size, dtype=bool)
    for _ in range(6):
        chosen = features[paper]  # least squares via the 6x6 "normal equations": fast
        coefficients = np.linalg.solve(chosen.T @ chosen + 1e-9 * np.eye(6), chosen.T @ values[paper])
        residual = values - features @ coefficients
        spread = 1.4826 * np.median(np.abs(residual[paper] - np.median(residual[paper])))  # robust std
        paper = residual < max(3 * spread, 0.02)
    return (basis(*work.shape) @ coefficients).reshape(work.shape)


def _keep_digit(mask: np.ndarray) -> np.ndarray:
    """Keep the digit's strokes; drop specks, and dark things at the picture's edge.

    A photo often catches the table beside the page, the paper's edge or a
    shadow: dark like ink, but touching the border, while a digit written on
    the page does not. We split the ink into connected blobs ("components"),
    drop specks of dust, and drop blobs touching the border, unless nothing
    else is left (a picture cropped tightly around its digit).
    """
    # Label the blobs on a coarse grid (about 100 cells a side; a cell is ink
    # if any of its pixels is): every ink cell takes the largest label among
    # its 8 neighbours until nothing changes, so each blob ends up with one label.
    height, width = mask.shape
    cell = max(1, math.ceil(max(height, width) / 100))
    padded = np.pad(mask, ((0, -height % cell), (0, -width % cell)))
    coarse = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell).any(axis=(1, 3))
    labels = np.where(coarse, np.arange(1, coarse.size + 1).reshape(coarse.shape), 0)
    while True:
        grown = np.where(coarse, _filter(labels, 3, np.max), 0)
        if np.array_equal(grown, labels):
            break
        labels = grown
    labels = np.repeat(np.repeat(labels, cell, axis=0), cell, axis=1)[:height, :width] * mask
    area = np.bincount(labels.ravel(), minlength=labels.max() + 1)
    area[0] = 0  # label 0 is the paper
    blobs = np.flatnonzero(area >= max(4, 0.0005 * height * width))  # smaller ones are specks
    on_border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inside = np.setdiff1d(blobs, on_border)
    return np.isin(labels, inside if inside.size else blobs)


def _ink_map(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From a greyscale picture to (ink, mask): ink in [0, 1], 1 = full stroke; mask = surely ink.

    Returns white-on-black, like MNIST, whatever the picture's colours were.
    """
    # 1. Work at a fixed size: a 28-pixel scan and a 12-megapixel photo then
    #    need the same filter sizes, and the big one stays fast.
    work = _fit(grey, _WORK_SIZE)
    height, width = work.shape
    # 2. A slight blur: phone sensors and JPEG add speckles that are not ink.
    work = _filter(work, 3, np.mean)
    # 3. Is the ink darker or lighter than the paper? The border is almost all
    #    paper (a digit rarely touches all four edges), so its median is the
    #    paper's colour; the ink is whichever extreme of the picture lies
    #    farther from it. MNIST is white ink on BLACK: dark ink is inverted.
    band = max(1, min(height, width) // 20)
    border = np.concatenate([work[:band].ravel(), work[-band:].ravel(),
                             work[:, :band].ravel(), work[:, -band:].ravel()])
    paper = float(np.median(border))
    darkest, brightest = np.percentile(work, [0.1, 99.9])
    dark_ink = paper - darkest > brightest - paper
    if dark_ink:
        work = 1.0 - work
    # 4. Uneven light: a photo is brighter near the lamp, and grey paper is not
    #    black after inverting. Fit a smooth surface (a quadratic in x and y)
    #    through the paper, leaving out the ink, and subtract it: the paper
    #    becomes 0 everywhere, the ink stays bright. A shadow dims paper and
    #    ink alike, so on paper we also divide by the paper's brightness:
    #    ink half as dark as its paper counts the same in the light and in
    #    the shade.
    surface = _paper_surface(work)
    flat = work - surface
    if dark_ink:
        flat /= np.clip(1.0 - surface, 0.1, None)  # 1 - surface: the paper's brightness before inverting
    # 5. Which pixels are ink? Otsu's threshold, but never within the noise
    #    of the paper: most of a picture is paper, so the median and the
    #    spread of all pixels describe the paper. (The spread is measured by
    #    the MAD, the median distance from the median, which the few ink
    #    pixels cannot inflate as they would a standard deviation.)
    median = float(np.median(flat))
    ink = np.clip(flat - median, 0.0, None)  # paper at 0, ink above it
    noise = 6 * 1.4826 * float(np.median(np.abs(flat - median)))  # 6 standard deviations of the paper
    threshold = max(_otsu_threshold(ink), noise, 0.04)
    mask = _keep_digit(ink > threshold)
    if mask.sum() < max(10, height * width // 20000) or float(ink.max()) < 0.08:
        raise CourseError(
            "Found no digit in the picture: it looks blank (one colour, or contrast too faint to tell ink "
            "from paper). Write the digit large and dark (a felt pen is better than a pencil) on plain paper, "
            "fill most of the photo with it, and try again; in a paint program, use a thick brush."
        )
    # 6. Stretch the contrast: MNIST's strokes are 1.0 (pure white) in the
    #    middle and grey at the edges (anti-aliasing). The stroke's typical
    #    brightness becomes 1.0; pixels near the paper's noise level become 0.
    #    Anything far from a stroke is paper: set to exactly 0, as in MNIST.
    core = float(np.percentile(ink[mask], 75))
    floor = min(noise, 0.5 * threshold)
    ink = np.clip((ink - floor) / max(core - floor, 1e-6), 0.0, 1.0)
    ink *= _filter(mask.astype(np.float64), 2 * max(1, round(0.01 * _WORK_SIZE)) + 1, np.max)
    return ink, mask


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: 2 x area / outline length.

    A stroke of width w and length L covers w*L pixels and its outline is
    about 2L pixels long (both sides), so 2 * area / outline ~ w.
    """
    inner = mask.copy()  # pixels whose 4 neighbours are all ink
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return 2 * mask.sum() / max(1, (mask & ~inner).sum())


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the brightness-weighted mean position; MNIST digits have it at (14, 14)."""
    total = image.sum()
    rows, cols = np.arange(image.shape[0]), np.arange(image.shape[1])
    return float(image.sum(axis=1) @ rows / total), float(image.sum(axis=0) @ cols / total)


def _match_stroke_width(ink: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thicken thin strokes, and thin very thick ones, towards MNIST's pen width.

    MNIST's strokes are about 12% of the digit's size wide (median; 8% to 20%
    for nine digits in ten). A ballpoint line on a big page shrinks to a
    faint hairline at 20 pixels, and a fat marker fills a digit's loops:
    both look unlike anything the network was trained on. A max filter
    (each pixel takes the brightest value around it) widens every stroke by
    the filter's size minus one; a min filter narrows it the same way.
    """
    box = _bounding_box(mask)
    size = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
    width = _stroke_width(mask)
    if width < MNIST_STROKE * size:  # thinner than MNIST's typical pen: widen to it
        grow = 2 * round((MNIST_STROKE * size - width) / 2) + 1
        return _filter(ink, grow, np.max), _filter(mask, grow, np.max)
    if width > 2 * MNIST_STROKE * size:  # far thicker than almost all of MNIST: narrow a little
        shrink = 2 * round((width - 1.6 * MNIST_STROKE * size) / 2) + 1
        narrowed = _filter(mask, shrink, np.min)
        if narrowed.any():
            return _filter(ink, shrink, np.min), narrowed
    return ink, mask


def prepare_digit_image(path: str | Path, *, mean: float, std: float) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Turn any picture of one digit into what an MNIST model expects.

    Returns (original, digit28, tensor):
      original  the picture as a greyscale array (0 black .. 1 white), at most
                1024 pixels a side, for showing next to the result;
      digit28   the 28x28 float array in [0, 1] the network sees: white ink on
                black, like MNIST;
      tensor    digit28 normalised with the training statistics `mean` and `std`
                (take them from the checkpoint), shape (1, 1, 28, 28).

    Works for phone photos and paint-program drawings, dark on light or light
    on dark, any size, anywhere in the frame, colour or greyscale, transparent
    PNGs. It expects ONE digit on plain paper that fills most of the frame:
    two digits become one squashed shape, and a small page on a dark desk
    looks like a big white blob. Look at the middle panel of
    plot_digit_prediction to check. Raises CourseError for a missing file,
    a file that is not a picture, or a picture with no visible ink.
    """
    path = Path(path).expanduser()
    grey = _read_greyscale(path)
    original = _fit(grey, _DISPLAY_SIZE) if max(grey.shape) > _DISPLAY_SIZE else grey
    # Greyscale, inverted if the paper is light, uneven light removed, contrast stretched:
    ink, mask = _ink_map(grey)
    # Bring the strokes to MNIST's width (see _match_stroke_width).
    ink, mask = _match_stroke_width(ink, mask)
    box = _bounding_box(mask)
    # Crop to the ink's bounding box: where the digit was in the picture no longer matters.
    digit = ink[box]
    # Scale so the longest side is 20 pixels, keeping the aspect ratio: a "1"
    # stays thin. Downscaling averages pixels, which gives the grey,
    # anti-aliased edges MNIST digits have.
    digit = np.clip(_fit(digit, MNIST_BOX), 0.0, 1.0)
    digit /= max(float(digit.max()), 1e-6)  # the brightest stroke is pure white again
    # Paste into a black 28x28 so the centre of mass lands on (14, 14), as
    # MNIST did. That is not the box's centre: a "7" has more ink at the top,
    # so its box sits lower. Clamped so no ink falls off the edge.
    row, col = center_of_mass(digit)
    top = int(np.clip(round(MNIST_SIZE / 2 - row), 0, MNIST_SIZE - digit.shape[0]))
    left = int(np.clip(round(MNIST_SIZE / 2 - col), 0, MNIST_SIZE - digit.shape[1]))
    digit28 = np.zeros((MNIST_SIZE, MNIST_SIZE))
    digit28[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    # Normalise exactly like the training images: (x - mean) / std.
    tensor = torch.from_numpy((digit28 - mean) / std).float().reshape(1, 1, MNIST_SIZE, MNIST_SIZE)
    return original, digit28, tensor


def predict_digit(model: nn.Module, tensor: torch.Tensor, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """The model's 10 probabilities (softmax of its logits) for one image, on the CPU."""
    model.eval()  # dropout off, batch norm uses its saved statistics
    with torch.no_grad():
        return torch.softmax(model(tensor.to(device)), dim=1)[0].cpu()


def format_top_k(probabilities: torch.Tensor, k: int = 3) -> str:
    """`Predicted digit: 7 (confidence 93.1%)` and the k most likely digits, one a line."""
    top = torch.topk(probabilities, k)
    lines = [f"Predicted digit: {int(top.indices[0])} (confidence {100 * float(top.values[0]):.1f}%)",
             f"Top {k}:"]
    lines += [f"  {rank}. {int(digit)}  {100 * float(p):5.1f}%"
              for rank, (digit, p) in enumerate(zip(top.indices, top.values), start=1)]
    return "\n".join(lines)


def classify_own_digit(model: nn.Module, path: str | Path, *, normalization: dict, out_path: str | Path,
                       model_name: str, device: torch.device | str = "cpu", show: bool = False) -> dict:
    """Prepare a picture, classify it and draw the result; returns the facts for the results JSON.

    The steps 04 and 06 share: prepare_digit_image -> predict_digit ->
    plot_digit_prediction. "report" holds the printable top-3 text.
    """
    original, digit28, tensor = prepare_digit_image(path, **normalization)
    probabilities = predict_digit(model, tensor, device=device)
    plot_digit_prediction(original, digit28, probabilities, out_path, show=show,
                          title=f"{Path(path).name}: {model_name} says {probabilities.argmax().item()}")
    return {"image": str(path), "image_prediction": int(probabilities.argmax()),
            "image_confidence": float(probabilities.max()), "report": format_top_k(probabilities)}


def plot_digit_prediction(original: np.ndarray, digit28: np.ndarray, probabilities: torch.Tensor,
                          path: str | Path, *, title: str = "Your digit", show: bool = False) -> Path:
    """Your picture, the 28x28 the network saw, and its 10 probabilities, side by side.

    If the middle panel does not look like an MNIST digit (white, centred,
    thick enough), the prediction cannot be trusted either: fix the picture.
    """
    import matplotlib.pyplot as plt

    probabilities = torch.as_tensor(probabilities).cpu()
    predicted = int(probabilities.argmax())
    fig, (ax_in, ax_seen, ax_bars) = plt.subplots(1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    ax_in.imshow(original, cmap="gray", vmin=0, vmax=1)
    ax_in.set_title("your picture (in greyscale)")
    ax_seen.imshow(digit28, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_seen.set_title("what the network sees (28x28)")
    for ax in (ax_in, ax_seen):
        ax.set_xticks([])
        ax.set_yticks([])
    colors = ["tab:green" if digit == predicted else "tab:gray" for digit in range(10)]
    bars = ax_bars.bar(range(10), 100 * probabilities.numpy(), color=colors)
    ax_bars.bar_label(bars, labels=[f"{100 * p:.0f}" if p >= 0.005 else "" for p in probabilities.tolist()],
                      fontsize=8)
    ax_bars.set(title=f"prediction: {predicted} ({100 * probabilities[predicted]:.1f}%)", xlabel="digit",
                ylabel="probability (%)", ylim=(0, 105), xticks=range(10))
    ax_bars.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# Plots: one style for the whole course
# ---------------------------------------------------------------------------
def finish_figure(fig, path: str | Path, *, show: bool = False) -> Path:
    """Save `fig` as a PNG at `path`; also show it in a window if asked."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if show and not _HEADLESS:
        plt.show()
    plt.close(fig)
    return note_written(path)


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
    import matplotlib.pyplot as plt

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


def plot_confusion_matrix(matrix: torch.Tensor, path: str | Path, *, title: str = "Confusion matrix",
                          show: bool = False) -> Path:
    """Draw a confusion matrix with its counts written in every cell.

    Rows are the true digits, columns the predictions. The diagonal (correct
    answers, about 1,000 per digit) would make every mistake look pale on
    one colour scale, so it is drawn in grey and the colour shows only the
    mistakes: the darker red, the more often that confusion happens.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    matrix = torch.as_tensor(matrix).long().cpu()
    n = matrix.shape[0]
    mistakes = matrix.clone().float()
    mistakes.fill_diagonal_(float("nan"))  # NaN cells are drawn with the colormap's "bad" colour
    cmap = plt.get_cmap("Reds").with_extremes(bad="#dddddd")
    fig, ax = plt.subplots(figsize=(7.6, 6.6))
    top = max(1.0, float(mistakes.nan_to_num().max()))  # the most frequent mistake: the darkest red
    image = ax.imshow(mistakes.numpy(), cmap=cmap, vmin=0, vmax=top)
    for a in range(n):
        for b in range(n):
            count = int(matrix[a, b])
            ax.text(b, a, str(count), ha="center", va="center", fontsize=9 if a == b else 10,
                    fontweight="bold" if a == b else "normal",
                    color="white" if a != b and count > 0.6 * top else ("#999999" if count == 0 else "black"))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set(xlabel="predicted digit", ylabel="true digit", title=title)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="number of mistakes (diagonal in grey = correct)")
    bar.locator = MaxNLocator(integer=True)  # counts: no 0.5 ticks
    bar.update_ticks()
    return finish_figure(fig, path, show=show)


def plot_prediction_grid(images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor,
                         path: str | Path, *, mean: float, std: float, title: str,
                         columns: int = 6, show: bool = False) -> Path:
    """A gallery of digits, each titled with prediction, confidence and truth.

    `images` are normalised (N, 1, 28, 28) tensors; we undo the normalisation
    (x * std + mean) to show the pixels as they were. Correct predictions are
    titled in green, mistakes in red, so errors jump out.
    """
    import matplotlib.pyplot as plt

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
