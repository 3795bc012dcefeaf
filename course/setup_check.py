"""Check your set-up: `python dl_utils.py` (run the toolbox itself).

Before the first lesson, or when one fails in a way you do not understand,
this says what the course sees on your machine, one line each:

    Python, PyTorch, torchvision   versions, and whether PyTorch is the CPU-only or the CUDA build
    device                         what --device auto picks, and why
    threads                        how many CPU threads PyTorch computes with
    MNIST                          where the lessons look for it, and whether each of the four files is
                                   there and whole (its size against what its header promises)
    outputs                        whether the lessons can write their checkpoints and plots
    speed                          training steps a second of 03's network, for about two seconds

It exits 0 when a lesson has everything it needs, and 1 with the fix for each
problem otherwise. It never downloads or writes anything: the lessons do that.

    python dl_utils.py                                    # the default folders, data/ and outputs/
    python dl_utils.py --data-dir DATA_DIR --out-dir outputs/mine
    python dl_utils.py --speed-seconds 0                  # skip the speed check
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

# This file never imports dl_utils (which imports course/) nor loads a lesson:
# the course's shared code has no import circles and no hidden lesson loads.
from course.cli import DEFAULT_OUT_DIR, MNIST_FILES, CourseError, fused_adam_works, get_device, resolve_data_dir

PYTHON_MIN = (3, 10)  # README's Quick start asks for Python 3.10+
TORCH_MIN = (2, 4)  # requirements.txt: torch.load(weights_only=True) handles every checkpoint we write
SPEED_SECONDS = 2.0  # long enough for a steady rate, short enough to wait for

# What the real MNIST files hold. Each starts with an IDX header: a magic
# number (2051 = images, 2049 = labels), the number of items and, for images,
# rows and columns, 4 bytes each; then one byte per pixel or per label. So an
# intact file's size follows from its own header:
#   images: 16 + items * 28 * 28   (train: 16 + 60,000 * 784 = 47,040,016 bytes)
#   labels:  8 + items             (train:  8 + 60,000       =     60,008 bytes)
MNIST_ITEMS = dict(zip(MNIST_FILES, (60_000, 60_000, 10_000, 10_000)))  # train images, labels; test images, labels
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049

# The speed check trains 03's network, built here rather than imported (the
# course's shared code never loads a lesson). It mirrors 03's specification,
# which is also 03's defaults: 784 -> 128 -> ReLU -> 10, Adam with lr 1e-3,
# fused where it works (03's FUSED setting), batches of 64 (dl_utils.BATCH_SIZE).
# tests/test_setup_check.py fails if these drift from 03.
SPEED_HIDDEN = 128  # 03's HIDDEN
SPEED_LR = 1e-3  # 03's LR
SPEED_BATCH = 64  # 03's BATCH_SIZE, the course's dl_utils.BATCH_SIZE
TRAIN_IMAGES = 55_000  # 03 learns from 55,000 images an epoch (the other 5,000 are for validation)


def _version(text: str) -> tuple[int, ...]:
    """"2.14.1+cu130" -> (2, 14)."""
    parts = text.split("+")[0].split(".")[:2]
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in parts)


def expected_size(name: str, items: int) -> int:
    """Bytes of an intact MNIST file `name` holding `items` images or labels."""
    return 16 + items * 28 * 28 if "images" in name else 8 + items


# ---------------------------------------------------------------------------
# The checks: each returns (what to print, the fix or None)
# ---------------------------------------------------------------------------
def check_python() -> tuple[str, str | None]:
    version = platform.python_version()
    line = f"{version} ({sys.executable})"
    if sys.version_info[:2] < PYTHON_MIN:
        return line, (f"Python {version} is older than the course needs ({'.'.join(map(str, PYTHON_MIN))}+). "
                      "Install a newer Python from python.org, make a fresh virtual environment with it and "
                      "`pip install -r requirements.txt` again (README, Quick start).")
    return line, None


def torch_build() -> str:
    """"CUDA 13.0 build", "ROCm 6.2 build" or "CPU-only build"."""
    if torch.version.cuda:
        return f"CUDA {torch.version.cuda} build"
    if getattr(torch.version, "hip", None):
        return f"ROCm {torch.version.hip} build"
    return "CPU-only build"


def check_torch() -> tuple[str, str | None]:
    build = torch_build()
    line = f"{torch.__version__}, {build}"
    if build.startswith("CUDA") and not torch.cuda.is_available():
        line += " (it runs on the CPU too; the CPU-only build is a much smaller install: README, Quick start)"
    if _version(torch.__version__) < TORCH_MIN:
        return line, (f"PyTorch {torch.__version__} is older than the course needs "
                      f"({'.'.join(map(str, TORCH_MIN))}+): `pip install --upgrade torch torchvision`.")
    return line, None


def check_device(preference: str) -> tuple[str, str | None, torch.device | None]:
    try:
        device, reason = get_device(preference)
    except CourseError as error:  # the device asked for is not there
        return f"--device {preference}: not available", str(error), None
    return f"{device.type}, chosen by --device {preference}: {reason.removeprefix('auto: ')}", None, device


def inspect_mnist_file(path: Path) -> tuple[str, str | None]:
    """One MNIST file: (what it is, the problem or None). Reads only its 16-byte header."""
    name = path.name
    real = expected_size(name, MNIST_ITEMS[name])
    kind = "images" if "images" in name else "labels"
    if not path.is_file():
        if path.is_dir():
            return "a folder, not a file", f"{path} is a folder; the lessons need the file {name} there"
        return "missing", None  # the caller explains missing files once, for all of them
    size = path.stat().st_size
    header_size = 16 if kind == "images" else 8  # magic, items[, rows, columns]: 4 bytes each
    with open(path, "rb") as f:
        header = f.read(header_size)
    magic = int.from_bytes(header[:4], "big") if len(header) >= 4 else None
    damaged = f"{name} is damaged: {size:,} bytes"
    if header[:2] == b"\x1f\x8b":  # every gzip file starts with these two bytes
        return "still compressed", (f"{path} is still gzip-compressed ({size:,} bytes; decompressed it is "
                                    f"{real:,}). Decompress it (gunzip, or 7-Zip on Windows) so that {name} "
                                    "holds the raw IDX file, or delete it to download it again.")
    if len(header) < header_size or magic != (_IMAGES_MAGIC if kind == "images" else _LABELS_MAGIC):
        return f"{size:,} bytes, not an MNIST file", (
            f"{damaged}, and its first bytes are not an MNIST {kind} header (an intact one is {real:,} bytes). "
            "It may be a web page saved in its place, or cut off while downloading. Delete it and run a lesson "
            "again to download it, or replace it with an intact copy.")
    items = int.from_bytes(header[4:8], "big")
    if kind == "images" and (int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")) != (28, 28):
        return f"{size:,} bytes, not 28x28 images", (
            f"{name} holds images that are not 28x28: it is not MNIST. Delete it and run a lesson to download "
            "MNIST again.")
    promised = expected_size(name, items)
    if size != promised:
        cut = "cut off (an interrupted download or a full disk?)" if size < promised else "longer than it should be"
        return f"{size:,} bytes, expected {promised:,}", (
            f"{damaged}, but its header promises {items:,} {kind}, which take {promised:,} bytes: it is {cut}. "
            f"Delete it ({path}) and run a lesson again (e.g. `python 02_load_mnist.py` with the same "
            "--data-dir) to download it afresh, or replace it with an intact copy.")
    note = "" if items == MNIST_ITEMS[name] else f"; not the full MNIST, which has {MNIST_ITEMS[name]:,}"
    return f"{size:,} bytes, ok ({items:,} {kind}{note})", None


def check_mnist(data_dir) -> tuple[list[tuple[str, str]], list[str]]:
    """Lines to print and the problems found, for the four files in <data_dir>/MNIST/raw/."""
    root = resolve_data_dir(data_dir)
    raw = root / "MNIST" / "raw"
    source = ("--data-dir" if data_dir else "$DL_DATA_DIR" if os.environ.get("DL_DATA_DIR")
              else "the default, data/ beside the scripts")
    lines, problems, missing = [("MNIST", f"looked for in {raw}/ (from {source})")], [], []
    for name in MNIST_ITEMS:
        state, problem = inspect_mnist_file(raw / name)
        lines.append((f"  {name}", state))
        if state == "missing":
            missing.append(name)
        elif problem:
            problems.append(problem)
    if missing:
        flag = f" --data-dir {data_dir}" if data_dir else ""
        which = "the four MNIST files are" if len(missing) == 4 else f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
        problems.append(
            f"MNIST: {which} not in {raw}/. With internet, `python 02_load_mnist.py{flag}` downloads them there "
            "(about 12 MB, 55 MB unpacked). Offline: copy train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (decompressed) into {raw}/ (README, \"Offline, "
            "or when the MNIST download fails\"). Already have them elsewhere? Pass --data-dir <folder> (the "
            "folder that holds MNIST/raw/) or set DL_DATA_DIR=<folder>.")
    return lines, problems


def check_out_dir(out_dir: Path) -> tuple[str, str | None]:
    """Can the lessons write into out_dir? Tries a temporary file (removed at once) in it or its nearest parent."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        return f"{out_dir}: a file, not a folder", (
            f"--out-dir {out_dir} names a file; the lessons write their checkpoints, plots and results into a "
            "folder. Pass another --out-dir, or move the file away.")
    existing = out_dir
    while not existing.exists():  # outputs/ is created by the first lesson; can it be?
        existing = existing.parent
    if not existing.is_dir():
        return f"{out_dir}: cannot be created", (
            f"--out-dir {out_dir} cannot be created: {existing} is a file. Pass a folder under a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{out_dir}: not writable", (
            f"The lessons cannot write into {existing} ({error.strerror or error}). Pass --out-dir with a "
            "folder of yours, e.g. --out-dir ~/dl_outputs, or fix the folder's permissions.")
    if existing == out_dir:
        return f"{out_dir}: writable", None
    return f"{out_dir}: not there yet; the first lesson creates it ({existing} is writable)", None


def network_of_03() -> nn.Module:
    """03's SimpleNN at its defaults, mirrored as nn.Sequential: 784 -> 128 -> ReLU -> 10.

    The same layers and the same (784 * 128 + 128) + (128 * 10 + 10) = 101,770
    parameters, so the same work per step.
    """
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, SPEED_HIDDEN), nn.ReLU(), nn.Linear(SPEED_HIDDEN, 10))


def speed_check(device: torch.device, seconds: float) -> tuple[str, str | None]:
    """Training steps a second of 03's network at 03's batch size, on random images (no MNIST needed)."""
    model = network_of_03().to(device)
    fused = fused_adam_works(device)  # as 03 builds its Adam: fused where this PyTorch has it for the device
    optimizer = torch.optim.Adam(model.parameters(), lr=SPEED_LR, fused=fused)
    batch = SPEED_BATCH
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, 28, 28, generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)

    def step():  # the five steps of 03's train_one_epoch
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    def sync():  # a GPU works asynchronously: wait for it before reading the clock
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(5):  # warm-up: the first steps allocate memory
        step()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
        if device.type == "cuda" and steps % 50 == 0:
            sync()
    sync()
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    per_epoch = -(-TRAIN_IMAGES // batch)  # ceil(55,000 / 64) = 860 steps make one epoch of 03
    line = (f"{rate:,.0f} training steps a second of 03's network at batch {batch} on {device.type}, "
            f"{'fused' if fused else 'for-loop'} Adam ({elapsed:.1f} s): about {per_epoch / rate:.1f} s of maths "
            "per epoch of 03")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        line += f"; load average {load:.1f} on {cores} cores"
        if load > 0.5 * cores:
            line += " (other programs were busy: the figure is lower than this machine can do)"
    return line, None


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python dl_utils.py",
        description="Check your set-up for the course: versions, device, MNIST, the outputs folder, speed.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST/raw/ (default: $DL_DATA_DIR, else data/ beside the scripts)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where the lessons will write (default: outputs/ beside the scripts)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="the device to check and time (default: %(default)s)")
    parser.add_argument("--speed-seconds", type=float, default=SPEED_SECONDS,
                        help="how long the speed check runs; 0 skips it (default: %(default)s)")
    return parser


def run_checks(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """Every check, in order: (lines to print, problems with their fixes)."""
    lines, problems = [], []

    def add(label, result):
        line, problem = result[:2]
        lines.append((label, line))
        if problem:
            problems.append(problem)

    add("Python", check_python())
    add("PyTorch", check_torch())
    add("torchvision", (torchvision.__version__, None))
    device_line, device_problem, device = check_device(args.device)
    add("device", (device_line, device_problem))
    add("threads", (f"{torch.get_num_threads()} for PyTorch's maths on the CPU "
                    f"({os.cpu_count()} CPU cores seen; OMP_NUM_THREADS changes it)", None))
    mnist_lines, mnist_problems = check_mnist(args.data_dir)
    lines += mnist_lines
    problems += mnist_problems
    add("outputs", check_out_dir(args.out_dir))
    if args.speed_seconds > 0 and device is not None:
        add("speed", speed_check(device, args.speed_seconds))
    else:
        add("speed", ("skipped" + (" (--speed-seconds 0)" if args.speed_seconds <= 0 else ""), None))
    return lines, problems


def main(argv=None) -> int:
    """Print the report; returns the exit status: 0 when a lesson has everything it needs, else 1."""
    args = build_parser().parse_args(argv)
    print("Checking your set-up for the course (python dl_utils.py --help for the options)\n")
    try:
        lines, problems = run_checks(args)
    except KeyboardInterrupt:
        print("\nInterrupted: nothing was checked to the end, and nothing was written.")
        return 130
    width = max(len(label) for label, _ in lines)
    for label, line in lines:
        print(f"{label:<{width}}  {line}")
    print()
    if not problems:
        print("All set: every lesson has what it needs. Start with `python 01_hello_pytorch.py`.")
        return 0
    print(f"{len(problems)} thing{'s' if len(problems) > 1 else ''} to fix before the lessons can run:")
    for number, problem in enumerate(problems, start=1):
        print(f"  {number}. {problem}")
    return 1
