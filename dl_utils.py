"""dl_utils.py - the course's shared toolbox.

Every numbered lesson imports this file for what the lessons share. Read it
once after 03_train_mnist.py: nothing here is magic. 03 writes its training
loop out itself (`train_one_epoch`); `train_epoch` below is the same five
steps, which 05 and 06 run through `train_model`.

What lives here, in the order a lesson uses it; [03 05] = the lessons whose code calls it:

    errors    CourseError [03 04 05 06 07], run [01 02 03 04 05 06 07]
    settings  add_common_args [01 02 03 04 05 06 07], parse_args [01 02 03 04 05 06 07],
              settings_from_args [01 02 03 04 06 07], changed_settings [03 06], positive_int [03 04 05 07],
              positive_float [05], fraction [03 06], note_written
    device    get_device [01 02 03 04 05 06 07], device_name [01 02 04 05 07], set_seed [01 02 03 04 05 06 07],
              fused_adam_works [03 06]
    data      read_idx, read_mnist [02 03], resolve_data_dir [02], split_indices [02 03],
              normalization_stats [02 03], shuffle_pixels, load_mnist_data [02 03 04 05 06 07],
              InMemoryLoader [06], MNISTData [06], standard_mnist_loaders [02]
    training  train_epoch, train_model [03 05 06 07], evaluate_model [03 04 05 06],
              collect_predictions [04 05 06], format_epoch, count_parameters [03 04 05 06 07]
    saving    save_checkpoint [03 05 06], load_checkpoint [04 06 07], state_dict_mismatches [04 07],
              import_script [04 05 06 07], save_results [01 02 03 04 05 06 07], summarize_run [03 05 06],
              log_experiment [03 05 06], machine_info [07]
    comparing read_experiments [05], filter_runs [05], best_runs [05], varying_settings [05],
              accuracy_by_value [05], format_runs_table [05], plot_runs_against [05], RESULT_COLUMNS [05]
    inspecting confusion_matrix [06 07], most_confused_pairs [06 07], misclassified_indices [06]
    own digit prepare_digit_image [04 06], classify_own_digit [04 06], predict_digit [04], format_top_k,
              plot_digit_prediction, center_of_mass, MNIST_SIZE, MNIST_BOX, MNIST_STROKE
    plots     finish_figure [01 02 05 06 07], plot_training_history [03 06], plot_confusion_matrix [06],
              plot_prediction_grid [04 06]

Names without a tag are used inside this toolbox (or by tests and benchmarks).
The plumbing lives in course/, a package a learner need not read, and is
imported below so that lessons write `dl_utils.X`: course/cli.py (settings,
errors), course/records.py (results files, the experiment log),
course/lab_notebook.py (comparing), course/own_digit.py (own digit).
tests/test_toolbox.py checks that this map is true.

Errors meant for a learner (missing data, a bad checkpoint, a loss that became
NaN) are raised as `CourseError`: Python prints its message and exits with a
non-zero status, without a traceback, because the message IS the lesson.
`python dl_utils.py` checks your set-up (course/setup_check.py).
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

try:
    import matplotlib
    import numpy as np
    import torch
    from torch import nn
except ImportError as missing:  # say how to fix it, not a traceback (`python dl_utils.py` checks the set-up)
    raise SystemExit(f"{missing.name} is not installed in this Python ({sys.executable}). Activate the course's "
                     "virtual environment, or run `pip install -r requirements.txt` (README.md, Quick start).")

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
        return torch.device("cpu"), f"auto: no CUDA or MPS GPU found, using the CPU ({_threads()})"
    if preference == "cpu":
        return torch.device("cpu"), f"asked for the CPU ({_threads()})"
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


def _threads() -> str:
    n = torch.get_num_threads()
    return f"{n} thread" if n == 1 else f"{n} threads"


def device_name(device: torch.device) -> str:
    """A human name for the results files: "cpu (2 threads)", "cuda (NVIDIA H100 80GB HBM3)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({_threads()})"
    return device.type


def fused_adam_works(device: torch.device) -> bool:
    """Can `torch.optim.Adam(..., fused=True)` run on `device` with the installed PyTorch?

    Fused Adam exists for CUDA and, in recent PyTorch releases, the CPU;
    where it does not (older builds, some MPS versions) building the
    optimizer raises an error.
    Building one for a single number is the surest test.
    """
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, ValueError, TypeError):
        return False


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


# ---------------------------------------------------------------------------
# Your own digit: from any picture to MNIST's 28x28
# ---------------------------------------------------------------------------
# 04 and 06 --image read a learner's own picture. Turning a phone photo into
# an MNIST-like 28x28 (greyscale, inverted, uneven light removed, cropped,
# scaled to 20 pixels, centred by centre of mass) is a subsystem of its own:
# it lives in course/own_digit.py, and these names stay usable as dl_utils.X.
from course.own_digit import (  # noqa: E402 (the toolbox above is defined first)
    MNIST_BOX, MNIST_SIZE, MNIST_STROKE, center_of_mass, classify_own_digit, format_top_k, plot_digit_prediction,
    predict_digit, prepare_digit_image,
)


# ---------------------------------------------------------------------------
# Plots: one style for the whole course
# ---------------------------------------------------------------------------
def finish_figure(fig, path: str | Path, *, show: bool = False) -> Path:
    """Save `fig` as a PNG at `path`; also show it in a window if asked."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" has arranged itself
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


# ---------------------------------------------------------------------------
# `python dl_utils.py`: check your set-up (course/setup_check.py)
# ---------------------------------------------------------------------------
if __name__ == "__main__":
    from course.setup_check import main as check_setup

    sys.exit(check_setup())
