"""The flags every lesson shares, their checks, and how a lesson ends.

Lesson scripts call these through dl_utils (`dl_utils.add_common_args`, ...).
`run(main)` is what `if __name__ == "__main__":` calls: it turns Ctrl-C and a
crash in the learner's own code into one clear paragraph and an exit code,
instead of a page of traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path

# Settings that say where files are, not how the model was made: left out of
# the recorded settings so a checkpoint made on one machine reads the same on
# another.
PLUMBING = ("data_dir", "out_dir", "show", "quick")

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


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
) -> argparse.ArgumentParser:
    """Add the flags every script shares; training flags when defaults are given.

    Each script passes its own UPPERCASE constants as the defaults, so the
    constant at the top of the script and `--help` always agree.
    """
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST/raw/ (default: $DL_DATA_DIR, else data/ beside the scripts)")
    from dl_utils import DEFAULT_OUT_DIR, QUICK_SUBSET

    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where .pth, .png and .json files go (default: outputs/ beside the scripts)")
    parser.add_argument("--seed", type=int, default=seed,
                        help="random seed: same seed, same numbers on the CPU (default: %(default)s)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to compute; auto picks CUDA, then Apple MPS, then CPU (default: %(default)s)")
    parser.add_argument("--show", action="store_true",
                        help="also open the plots in windows (they are always saved as PNG)")
    if epochs is not None:
        parser.add_argument("--epochs", type=positive_int, default=epochs,
                            help="passes over the training set (default: %(default)s)")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=positive_int, default=batch_size,
                            help="images per gradient step (default: %(default)s)")
    if lr is not None:
        parser.add_argument("--lr", type=positive_float, default=lr,
                            help="learning rate: the size of each step (default: %(default)s)")
    if epochs is not None:
        parser.add_argument("--subset", type=positive_int, default=None,
                            help="train on only the first N training images, for a quick run (default: all)")
        parser.add_argument("--pixels", choices=["natural", "shuffled"], default="natural",
                            help="shuffled: move the 784 pixels of every image (train, validation and test) "
                                 "to new places by one fixed permutation, to test what a model knows about "
                                 "neighbouring pixels (default: %(default)s)")
        parser.add_argument("--quick", action="store_true",
                            help=f"a tour in seconds: 1 epoch on {QUICK_SUBSET:,} images "
                                 f"(same as --epochs 1 --subset {QUICK_SUBSET})")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the flags; `--quick` becomes 1 epoch on QUICK_SUBSET images.

    The output folder is checked here, before any data is read or any
    epoch is trained, so a bad --out-dir costs the learner nothing.
    """
    from dl_utils import QUICK_SUBSET

    args = parser.parse_args(argv)
    if getattr(args, "quick", False):
        args.epochs = 1
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
    from dl_utils import CourseError

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
        changed.append(key.replace("_", " ") if value is True else f"{key.replace('_', ' ')} {shown}")
    return ", ".join(changed) or "defaults"
