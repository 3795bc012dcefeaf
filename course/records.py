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
from pathlib import Path

import torch

from course.cli import note_written


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
        "device": _device_name(torch.device(device)),
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
    parameters, best validation and test accuracy, seconds, device), so after
    an afternoon of "change it and rerun" you can still tell which setting
    gave which accuracy. New columns are added when a run brings a setting
    the file has not seen yet (the file is rewritten then).
    """
    path = Path(out_dir) / "experiments.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": summary["date"], "script": summary["script"], **summary["hyperparameters"]}
    for key in ("parameters", "best_val_accuracy", "test_accuracy", "train_seconds", "device"):
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


def _device_name(device: torch.device) -> str:
    from dl_utils import device_name

    return device_name(device)
