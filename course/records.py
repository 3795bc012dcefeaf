"""What a run leaves behind: its results JSON and a row in experiments.csv.

Lessons call these through dl_utils. Every results file records the machine
(CPU model, threads, torch version, load average), because the same seed
gives slightly different numbers on another CPU or PyTorch build.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import matplotlib
import torch

from course.cli import note_written

# Plots: draw into files when there is no screen (a server, CI, an SSH
# session); "Agg" is matplotlib's file-only backend. With a screen, --show can
# open windows. This must happen before pyplot is imported anywhere.
HEADLESS = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
if HEADLESS:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def cpu_model() -> str:
    """The processor's name, e.g. "AMD EPYC 9V74 80-Core Processor" (Linux, macOS, Windows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """Where a run's numbers come from: CPU, threads, torch build, how busy the machine was."""
    info = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "torch_cuda_build": torch.version.cuda or "cpu-only"}
    if hasattr(os, "getloadavg"):
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def save_results(out_dir: str | Path, name: str, results: dict) -> Path:
    """Write `results` to <out_dir>/<name>.json; the docs quote these files."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return note_written(path)


def summarize_run(*, script: str, hyperparameters: dict, history: dict, test_metrics: dict,
                  parameters: int, device: torch.device) -> dict:
    """The results dict every training script returns and saves as JSON.

    Accuracies are fractions (e.g. 0.9781 for 97.81%); `train_seconds` is the
    time spent in the epochs (training + validation), not loading data.
    """
    return {
        "script": script,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "device": device_name(torch.device(device)),
        **machine_info(),
        "parameters": parameters,
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "best_val_accuracy": max(history["val_accuracy"]),
        "final_val_accuracy": history["val_accuracy"][-1],
        "train_seconds": sum(history["seconds"]),
        "epochs_run": len(history["epoch"]),
        "hyperparameters": dict(hyperparameters),
        "history": history,
    }


def log_experiment(out_dir: str | Path, summary: dict) -> Path:
    """Append one row for this run to <out_dir>/experiments.csv: your lab notebook.

    Every training run adds a line (time, script, every hyperparameter,
    parameters, last and best validation accuracy, test accuracy, seconds, device), so after
    an afternoon of "change it and rerun" you can still tell which setting
    gave which accuracy. New columns are added when a run brings a setting
    the file has not seen yet (the file is rewritten then).
    """
    path = Path(out_dir) / "experiments.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": summary["date"], "script": summary["script"], **summary["hyperparameters"]}
    # final_val_accuracy: the last epoch's, the number the lessons print and the claims ledger compares;
    # best_val_accuracy: the best epoch's, which flatters a run a little (the best of several noisy scores).
    for key in ("parameters", "final_val_accuracy", "best_val_accuracy", "test_accuracy", "train_seconds", "device"):
        if key in summary:
            row[key] = round(summary[key], 4) if isinstance(summary[key], float) else summary[key]
    rows, fields = [], list(row)
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = list(reader.fieldnames or []) + [k for k in row if k not in (reader.fieldnames or [])]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows + [row])
    return path


def device_name(device: torch.device) -> str:
    """A human name for the results files: "cpu (2 threads)", "cuda (NVIDIA H100 80GB HBM3)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
    return device.type


def finish_figure(fig, path: str | Path, *, show: bool = False) -> Path:
    """Save `fig` as a PNG at `path`; also show it in a window if asked."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" has arranged itself
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    if show and not HEADLESS:
        plt.show()
    plt.close(fig)
    return note_written(path)
