"""Run every lesson on the real MNIST and keep what it measured, for the docs.

The numbers in README.md, LEARNING_GUIDE.md and ML_CONCEPTS_EXPLAINED.md are
quoted from the files this script writes, and tests/test_docs.py checks each
quoted number against them. Rerun it after changing a script, then update
the docs where the numbers moved.

    python benchmarks/run_all.py --data-dir ../shared/data            # everything (~15 min, 2-core CPU)
    python benchmarks/run_all.py --data-dir ../shared/data --only 03_train_mnist 04_load_model

Each run is a separate process, as a learner would start it, timed from
start to exit with its peak memory (RSS). For run NAME it writes
    docs/results/NAME.json   the script's own results JSON + a "run" entry
                             (command, wall_seconds, peak_rss_mb, machine)
    docs/results/NAME.log    what it printed
    docs/images/NAME_*.png   the figures the guide embeds (selected runs)
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
IMAGES = REPO / "docs" / "images"

# (run name, script, extra flags, figures to keep for the docs).
# Runs sharing an out-dir see each other's files: 04 loads 03's model, and 06
# compares itself with 03's MLP, so the defaults all share one folder.
RUNS = [
    ("01_hello_pytorch", "01_hello_pytorch.py", [], ["activation_functions.png"]),
    ("02_load_mnist", "02_load_mnist.py", [], ["mnist_samples.png", "mnist_statistics.png"]),
    ("03_train_mnist", "03_train_mnist.py", [], ["training_history.png"]),
    ("04_load_model", "04_load_model.py", [], ["predictions.png"]),
    ("05_experiment_architectures", "05_experiment_architectures.py", [], ["architecture_comparison.png"]),
    ("06_cnn_mnist", "06_cnn_mnist.py", [], ["cnn_training_history.png", "cnn_filters.png",
                                            "cnn_feature_maps.png", "confusion_matrix.png",
                                            "misclassified.png", "mlp_vs_cnn.png", "adversarial_example.png"]),
    # "Try this" experiments on 03: one setting changed at a time.
    ("03_hidden_32", "03_train_mnist.py", ["--hidden", "32"], []),
    ("03_hidden_512", "03_train_mnist.py", ["--hidden", "512"], []),
    ("03_dropout", "03_train_mnist.py", ["--dropout", "0.2"], []),
    ("03_batch_norm", "03_train_mnist.py", ["--batch-norm"], []),
    ("03_sgd", "03_train_mnist.py", ["--optimizer", "sgd", "--lr", "0.01"], []),
    ("03_sgd_momentum", "03_train_mnist.py", ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"], []),
    ("03_no_normalize", "03_train_mnist.py", ["--no-normalize"], []),
    ("03_sgd_no_normalize", "03_train_mnist.py", ["--optimizer", "sgd", "--lr", "0.01", "--no-normalize"], []),
    ("03_early_stopping", "03_train_mnist.py", ["--epochs", "30", "--patience", "3"], ["training_history.png"]),
    # The four shapes of a training curve (LEARNING_GUIDE.md, "Reading training curves").
    ("03_overfit", "03_train_mnist.py", ["--subset", "1000", "--epochs", "40", "--hidden", "512"],
     ["training_history.png"]),
    ("03_underfit", "03_train_mnist.py", ["--hidden", "2"], ["training_history.png"]),
    ("03_lr_too_high", "03_train_mnist.py", ["--lr", "0.05"], ["training_history.png"]),
    ("06_augment", "06_cnn_mnist.py", ["--augment"], []),
]


def machine() -> dict:
    """Where the numbers were measured."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version()}


def run(name: str, script: str, flags: list, out_dir: Path, data_dir: str) -> dict:
    """Start the script as its own process; return wall time, peak RSS and its output."""
    command = [sys.executable, str(REPO / script), "--data-dir", data_dir, "--out-dir", str(out_dir), *flags]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, cwd=REPO)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # the rusage of this one child
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}):\n{output[-3000:]}")
    shown = ["python", script, *flags]
    # The log reads as if run from the repo with the default outputs/ folder.
    output = output.replace(str(out_dir), "outputs").replace(str(REPO) + "/", "")
    return {"command": " ".join(shown), "wall_seconds": round(wall, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "output": output}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding MNIST/raw/")
    parser.add_argument("--only", nargs="*", help="run names to (re)run (default: all)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    shared = Path(tempfile.mkdtemp(prefix="run_all_"))
    for name, script, flags, figures in RUNS:
        if args.only and name not in args.only:
            continue
        # Default runs share one out-dir; variants get their own, so they never overwrite mnist_model.pth.
        out_dir = shared if not flags else Path(tempfile.mkdtemp(prefix=f"{name}_"))
        if args.only and not flags and name in ("04_load_model", "06_cnn_mnist") \
                and not (shared / "mnist_model.pth").exists() and "03_train_mnist" not in args.only:
            # 04 and 06 need 03's model: take it from the last full run's output if we have none.
            raise SystemExit(f"{name} needs 03's model: add 03_train_mnist to --only.")
        print(f"== {name}: python {script} {' '.join(flags)}", flush=True)
        measured = run(name, script, flags, out_dir, args.data_dir)
        stem = Path(script).stem
        results = json.loads((out_dir / f"{stem}.json").read_text())
        results["run"] = {k: measured[k] for k in ("command", "wall_seconds", "peak_rss_mb")}
        results["run"]["machine"] = machine()
        results["run"]["date"] = time.strftime("%Y-%m-%d")
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / f"{name}.log").write_text(measured["output"])
        for figure in figures:
            shutil.copy(out_dir / figure, IMAGES / f"{name}_{figure}")
        print(f"   {measured['wall_seconds']:.1f} s, peak {measured['peak_rss_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
