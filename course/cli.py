"""Settings and flags, clear errors, and how a lesson ends.

Lesson scripts call these through dl_utils (`dl_utils.build_parser`, ...).
A lesson declares each setting once, as an UPPERCASE line with its reason in
a comment; `collect_settings` and `build_parser` turn that block into flags
(the comment becomes the --help text) and the recorded config (nanoGPT's
habit). `run(main)` is what `if __name__ == "__main__":` calls: it turns Ctrl-C
and a crash in the learner's own code into one clear paragraph and an exit
code, instead of a page of traceback. This module imports nothing of the course.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

import torch

# data/ and outputs/ sit next to the scripts, wherever you run them from:
# `python course/03_train_mnist.py` from another folder still finds them.
SCRIPT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = SCRIPT_DIR / "data"
DEFAULT_OUT_DIR = SCRIPT_DIR / "outputs"

# --quick trains 1 epoch on this many images: enough to watch learning happen.
QUICK_SUBSET = 5000


class CourseError(SystemExit):
    """A problem the learner can fix, explained in one paragraph.

    It is a SystemExit, so when it reaches the top of a script Python prints
    the message (no traceback) and exits with status 1. Tests catch it like
    any exception: `with pytest.raises(CourseError)`.
    """


# Settings that say where files are (your picture too), not how the model was made: left out of
# the recorded settings so a checkpoint made on one machine reads the same on
# another.
PLUMBING = ("data_dir", "out_dir", "show", "quick", "image")

# Files this process has finished writing (save_checkpoint, save_results and
# finish_figure add to it), so an interrupted run can say what it kept.
written_files: list[Path] = []


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (an epoch count of 0 trains nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate of 0 learns nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a probability in [0, 1), e.g. a dropout rate."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (0 switches a setting off, e.g. --patience 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def collect_settings(namespace: dict) -> dict:
    """The UPPERCASE settings defined so far in a lesson: {"HIDDEN": 128, ...}, in file order.

    A lesson calls `SETTINGS = dl_utils.collect_settings(globals())` right
    after its settings block, so exactly the block's names are collected.
    """
    plain = (bool, int, float, str, tuple, list)
    return {name: value for name, value in namespace.items()
            if name.isupper() and not name.startswith("_") and isinstance(value, plain)}


def _comments(source_file) -> dict:
    """{"HIDDEN": "neurons in the hidden layer ..."}: the comment beside each UPPERCASE line."""
    found = {}
    for line in Path(source_file).read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Z][A-Z0-9_]*)\s*=.*?\s#\s*(.*)$", line)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2).strip()
    return found


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


# How a setting's flag checks its value, by the setting's name, so the check does
# not change when you edit a default. Any other whole number or number may be 0
# or more (0 often means "off"); a lesson can pass its own check with types=.
CHECKS = {"EPOCHS": positive_int, "BATCH_SIZE": positive_int, "HIDDEN": positive_int, "SEEDS": positive_int,
          "LR": positive_float, "TEMPERATURES": positive_float,
          "DROPOUT": fraction, "MOMENTUM": fraction, "LABEL_SMOOTHING": fraction, "EPSILON": fraction}


def _flag_type(value, name: str, types: dict):
    if name in types or name in CHECKS:
        return types.get(name, CHECKS.get(name))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return type(value)
    return non_negative_int if isinstance(value, int) else non_negative_float


def build_parser(description: str, settings: dict, *, source: str, choices: dict | None = None,
                 types: dict | None = None) -> argparse.ArgumentParser:
    """One flag per setting, e.g. HIDDEN = 128 -> --hidden (default 128), its comment as the help.

    Booleans get a pair (--fused / --no-fused), lists take several values,
    numbers are checked (CHECKS: a learning rate must be positive, a dropout
    rate below 1; other numbers 0 or more). `choices={"OPTIMIZER": ("adam", "sgd")}` limits
    a text setting. Every lesson also gets --data-dir, --out-dir, --device and
    --show, and a lesson that trains (it has EPOCHS) gets --quick.
    """
    choices, types = choices or {}, types or {}
    help_texts = _comments(source)
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, value in settings.items():
        flag = "--" + name.lower().replace("_", "-")
        helps = help_texts.get(name, "").replace("%", "%%") or " "
        if isinstance(value, bool):
            parser.add_argument(flag, default=value, action=argparse.BooleanOptionalAction, help=helps)
        elif isinstance(value, (tuple, list)):
            parser.add_argument(flag, nargs="+", type=_flag_type(value[0], name, types), default=list(value),
                                choices=choices.get(name), metavar=name, help=helps)
        else:
            parser.add_argument(flag, type=_flag_type(value, name, types), default=value,
                                choices=choices.get(name), help=helps)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST/raw/; if not given, $DL_DATA_DIR, else data/ beside the scripts")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where .pth, .png and .json files go (outputs/ beside the scripts)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to compute; auto picks CUDA, then Apple MPS, then the CPU")
    parser.add_argument("--show", action="store_true", help="also open the plots in windows (always saved as PNG)")
    if "EPOCHS" in settings:
        parser.add_argument("--quick", action="store_true",
                            help=f"a tour in seconds: 1 epoch on {QUICK_SUBSET:,} training images")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the flags; `--quick` becomes 1 epoch on QUICK_SUBSET images.

    The output folder is checked here, before any data is read or any
    epoch is trained, so a bad --out-dir costs the learner nothing.
    """
    args = parser.parse_args(argv)
    if getattr(args, "quick", False) and hasattr(args, "epochs"):
        args.epochs = 1
        if hasattr(args, "subset"):
            args.subset = args.subset or QUICK_SUBSET
    if getattr(args, "out_dir", None) is not None:
        check_out_dir(args.out_dir)
    return args


def settings_from_args(args: argparse.Namespace) -> dict:
    """Every setting of this run, read from the parsed flags (nanoGPT's habit).

    A flag added to a lesson lands in its checkpoint, its results JSON and
    experiments.csv with no other edit. Paths and display switches are left
    out (PLUMBING); values are plain Python, so the checkpoint stays loadable
    with `weights_only=True`.
    """
    return {key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items() if key not in PLUMBING}


def check_out_dir(out_dir: Path) -> Path:
    """Make sure `out_dir` is a folder this process can write to, or say how to fix it."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CourseError(
            f"--out-dir {out_dir} is a file, not a folder, so nothing could be saved there. "
            "Pass a folder (it is created if missing), e.g. --out-dir outputs/, or move that file away.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        raise CourseError(
            f"Cannot write to --out-dir {out_dir} ({type(error).__name__}: {error.strerror or error}). "
            "Pick a folder you can write to, e.g. --out-dir outputs/ beside the scripts.") from None
    return out_dir


def note_written(path: Path) -> Path:
    """Remember that `path` was written completely (see `run`)."""
    written_files.append(Path(path))
    return path


def _interrupt_message(interrupt: KeyboardInterrupt) -> str:
    where = f" {interrupt}" if str(interrupt) else ""
    kept = sorted({p.name for p in written_files})
    saved = (f"This run had already saved {', '.join(kept)}; nothing after that was written."
             if kept else "Nothing of this run was saved.")
    return (f"\nInterrupted{where}. {saved} Files from earlier runs are unchanged: a checkpoint is "
            "written to a temporary file and renamed only when complete, so none is ever half-written.")


def _crash_message(error: Exception) -> str:
    """One paragraph naming the error and the line of the course's code it came from."""
    frames = traceback.extract_tb(error.__traceback__)
    course = Path(__file__).resolve().parents[1]

    def is_course_code(filename: str) -> bool:  # not torch's or Python's own files (even in a .venv here)
        path = Path(filename).resolve()
        return path.is_relative_to(course) and "site-packages" not in path.parts and path.parent != Path(__file__).parent

    frame = ([f for f in frames if is_course_code(f.filename)] or frames)[-1]
    where = f"{Path(frame.filename).name} line {frame.lineno}, in {frame.name}"
    code = f": `{frame.line.strip()}`" if frame.line else ""
    message = " ".join(str(error).split()) or "(no message)"
    return (f"The script stopped with an error: {type(error).__name__}: {message}. It was raised at "
            f"{where}{code}. If you edited that code, that line (or what it calls) is the place to look; "
            "undo your last change to check. For the full traceback, run again with DL_TRACEBACK=1.")


def run(main) -> None:
    """Run a lesson's `main()`: Ctrl-C exits 130 and a crash exits 1, each with one paragraph."""
    try:
        main()
    except KeyboardInterrupt as interrupt:
        print(_interrupt_message(interrupt), file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT (2): the shell's code for "stopped by Ctrl-C"
    except Exception as error:  # SystemExit (CourseError, argparse) is not an Exception: it passes
        if os.environ.get("DL_TRACEBACK"):
            raise
        print(_crash_message(error), file=sys.stderr)
        sys.exit(1)


def changed_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The settings that differ from the defaults, for a plot's title: "hidden 32, lr 0.01".

    A picture saved without them is a picture nobody can reproduce; "defaults"
    when nothing was changed.
    """
    changed = []
    for key, value in settings_from_args(args).items():
        if key == "device" or value == parser.get_default(key):
            continue
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        name = key.replace("_", " ")
        changed.append(name if value is True else f"no {name}" if value is False else f"{name} {shown}")
    return ", ".join(changed) or "defaults"


# ---------------------------------------------------------------------------
# Where to compute (--device) and where MNIST is (--data-dir)
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


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Where MNIST lives: --data-dir, else $DL_DATA_DIR, else data/ beside the scripts."""
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get("DL_DATA_DIR"):
        return Path(os.environ["DL_DATA_DIR"]).expanduser().resolve()
    return DEFAULT_DATA_DIR


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def missing_data_message(root: Path, error: Exception) -> str:
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


def damaged_file_message(path: Path, problem: str) -> str:
    return (f"The MNIST file {path} is damaged: {problem}. This happens when a download was cut "
            "off or the file was copied only in part. To fix it, delete that file and run again "
            "(it is downloaded again when you are online), or copy a good one in its place "
            "(`python dl_utils.py` checks all four).")
