"""Reading the lab notebook (experiments.csv) back: which run was best, and what mattered?

Used by `05_experiment_architectures.py --compare-runs` (extras/compare_runs.py),
through dl_utils (`dl_utils.read_experiments`, ...).
"""

from __future__ import annotations

import csv
import math
import statistics
import textwrap
from pathlib import Path

from course.cli import CourseError
from course.records import finish_figure  # (it picks the plot backend before pyplot loads)

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

# experiments.csv is plain text, so every cell comes back as a string. These
# helpers turn the cells back into numbers, keep the runs you ask for, rank
# them and plot accuracy against one setting (05 --compare-runs uses them).
RESULT_COLUMNS = ("time", "script", "parameters", "final_val_accuracy", "best_val_accuracy", "test_accuracy",
                  "train_seconds", "device")


def _cell_value(text: str):
    """One CSV cell -> None, True/False, int, float or the string itself.

    Only "True" and "False", as Python writes a bool, become bools: a
    choice such as 03's --labels true stays the text "true".
    """
    text = text.strip()
    if text == "" or text.lower() == "none":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_experiments(path: str | Path) -> list[dict]:
    """Read experiments.csv back: one dict per run, numbers as numbers, empty cells as None."""
    path = Path(path)
    if not path.exists():
        raise CourseError(f"There is no experiment log at {path} yet. Every training run adds a row to it: "
                          f"train something first (python 03_train_mnist.py --quick, then change a setting "
                          f"and run it again), or point --out-dir at the folder your runs wrote to.")
    with path.open(newline="") as f:
        return [{key: _cell_value(value or "") for key, value in row.items()} for row in csv.DictReader(f)]


def filter_runs(runs: list[dict], where) -> list[dict]:
    """Keep the runs that match EVERY condition in `where`: (setting, value as text) pairs such as
    [("optimizer", "adam"), ("epochs", "10")], or a dict {"optimizer": "adam"}."""
    conditions = list(where.items()) if isinstance(where, dict) else list(where)
    known = set().union(*runs) if runs else set()
    unknown = list(dict.fromkeys(key for key, _ in conditions if key not in known))
    if unknown:
        raise CourseError(f"experiments.csv has no column {', '.join(unknown)}; its columns are: "
                          f"{', '.join(sorted(known))}.")

    def matches(cell, text):  # "batch_norm=true" as typed still finds the bool True
        value = _cell_value(text)
        return cell == value or (isinstance(cell, bool) and str(cell).lower() == text.strip().lower())

    # 0 == 0.0 and 1 == True in Python: "dropout=0" keeps rows where dropout is 0.0.
    return [run for run in runs if all(matches(run.get(key), text) for key, text in conditions)]


def accuracy_key(runs: list[dict]) -> str:
    """The measure every comparison here uses: the last epoch's validation accuracy (what the lessons print and
    the claims ledger compares) where every run logged it; older logs have only the best epoch's."""
    return "final_val_accuracy" if all(run.get("final_val_accuracy") is not None for run in runs) \
        else "best_val_accuracy"


def best_runs(runs: list[dict], *, k: int = 10, by: str | None = None) -> list[dict]:
    """The k runs with the highest `by` (default: accuracy_key), best first.

    Rank by VALIDATION accuracy: picking the winner by test accuracy would
    make the test set part of your tuning, and its score would no longer be
    an honest estimate (see "Train, Validation & Test Sets").
    """
    by = by or accuracy_key(runs)
    return sorted((run for run in runs if run.get(by) is not None), key=lambda run: run[by], reverse=True)[:k]


def varying_settings(runs: list[dict]) -> tuple[list[str], dict]:
    """Split the hyperparameter columns into (those that differ between runs, {name: value} of the rest)."""
    columns = [key for key in dict.fromkeys(key for run in runs for key in run) if key not in RESULT_COLUMNS]
    varying, constant = [], {}
    for key in columns:
        values = {repr(run.get(key)) for run in runs}
        if len(values) > 1:
            varying.append(key)
        else:
            constant[key] = runs[0].get(key)
    return varying, constant


def accuracy_by_value(runs: list[dict], setting: str) -> list[dict]:
    """For each value of `setting` (runs without it are skipped): how many runs, the best and the mean
    validation accuracy (accuracy_key). Sorted by value."""
    key, groups = accuracy_key(runs), {}
    for run in runs:
        if run.get(setting) is not None:
            groups.setdefault(run[setting], []).append(run[key])
    return [{"value": value, "runs": len(acc), "best": max(acc), "mean": sum(acc) / len(acc), "accuracy": key}
            for value, acc in sorted(groups.items(), key=lambda item: (isinstance(item[0], str), item[0]))]


def effects_against_noise(runs: list[dict], setting: str) -> dict:
    """The claims ledger's rule on your own log: each value of `setting` against the value with the most runs.

    effect = mean validation accuracy (this value) - mean (reference), in points; spread = the standard error
    of that difference; "effect" when |effect| > 2 x spread, else "within noise" (benchmarks/claims.py).
    Uses the last epoch's validation accuracy where every run has it (older logs: the best epoch's).
    A value needs 2 or more runs (seeds) for a spread; those with fewer get no verdict.
    """
    key, groups = accuracy_key(runs), {}
    for run in runs:
        if run.get(setting) is not None:
            groups.setdefault(run[setting], []).append(100 * run[key])
    reference = max(groups, key=lambda value: len(groups[value]))  # the first of equals
    ref = groups[reference]
    rows = []
    for value, acc in groups.items():
        if value == reference:
            continue
        row = {"value": value, "runs": len(acc), "effect": sum(acc) / len(acc) - sum(ref) / len(ref)}
        if min(len(acc), len(ref)) >= 2:
            row["spread"] = (statistics.variance(acc) / len(acc) + statistics.variance(ref) / len(ref)) ** 0.5
            row["verdict"] = "effect" if abs(row["effect"]) > 2 * row["spread"] else "within noise"
        rows.append(row)
    return {"accuracy": key, "reference": reference, "reference_runs": len(ref), "rows": rows}


def format_runs_table(runs: list[dict], columns: list[str], *, width: int = 100) -> str:
    """A plain-text table at most `width` characters wide: rank, the setting columns, accuracies, seconds.

    A setting column that does not fit is left out and named below the table,
    so the table stays readable in a terminal however many settings differ.
    """
    def show(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def percent(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    rank = ["#", *(str(i) for i in range(1, len(runs) + 1))]
    key = accuracy_key(runs)
    results = [["val acc" if key == "final_val_accuracy" else "best val", *(percent(run.get(key)) for run in runs)],
               ["test acc", *(percent(run.get("test_accuracy")) for run in runs)],
               ["seconds", *("-" if run.get("train_seconds") is None else f"{run['train_seconds']:.1f}"
                             for run in runs)]]
    used = sum(max(map(len, cells)) + 2 for cells in [rank, *results]) - 2  # two spaces between columns
    settings, left_out = [], []
    for column in columns:
        cells = [column, *(show(run.get(column)) for run in runs)]
        if used + max(map(len, cells)) + 2 <= width:
            settings.append(cells)
            used += max(map(len, cells)) + 2
        else:
            left_out.append(column)
    table = [rank, *settings, *results]
    widths = [max(map(len, cells)) for cells in table]
    lines = ["  ".join(cells[row].rjust(w) for cells, w in zip(table, widths)) for row in range(len(runs) + 1)]
    if left_out:
        lines.append(textwrap.fill(f"(no room in {width} columns for {', '.join(left_out)}: compare_runs.json "
                                   "has every setting; --where narrows the runs)", width))
    return "\n".join(lines)


def plot_runs_against(runs: list[dict], setting: str, path: str | Path, *, title: str | None = None,
                      show: bool = False) -> Path:
    """Validation accuracy (accuracy_key) of every run against one setting, one colour per script.

    Each dot is one run; the line joins the best run at each value (the best
    is a fairer summary than the mean when other settings changed too: one
    broken run does not drag it down). A number setting (lr, hidden, dropout)
    gets a number axis, on a log scale when its values span a factor of 10 or
    more (learning rates, layer sizes); anything else (optimizer, batch_norm)
    gets one column per value. Dots that sit apart at the same value differ
    in another setting, or only in their seed.
    """
    runs = [run for run in runs if run.get(setting) is not None]
    key, values = accuracy_key(runs), [run[setting] for run in runs]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    order = sorted(set(values)) if numeric else sorted(set(map(str, values)))
    position = (lambda v: float(v)) if numeric else (lambda v: float(order.index(str(v))))
    log_axis = numeric and min(values) > 0 and max(values) / min(values) >= 10
    fig, ax = plt.subplots(figsize=(8, 5))
    scripts = list(dict.fromkeys(run["script"] for run in runs))
    for index, script in enumerate(scripts):
        color = plt.get_cmap("tab10")(index)
        mine = [run for run in runs if run["script"] == script]
        # On a column axis, each script's dots sit a little apart so they do not hide each other.
        shift = 0.0 if numeric else 0.12 * (index - (len(scripts) - 1) / 2)
        xs = [position(run[setting]) + shift for run in mine]
        ys = [100 * run[key] for run in mine]
        ax.plot(xs, ys, "o", color=color, alpha=0.55, label=f"{script}: {len(mine)} run{'s' if len(mine) > 1 else ''}")
        best = {}
        for x, y in zip(xs, ys):
            best[x] = max(best.get(x, -math.inf), y)
        if len(best) > 1:
            ax.plot(sorted(best), [best[x] for x in sorted(best)], "-", color=color, alpha=0.8,
                    label=f"{script}: best run at each value")
    if log_axis:
        ax.set_xscale("log")
    if len(order) <= 12:  # few values: a tick at each, written as in the log (0.001, not 10^-3)
        ax.set_xticks([position(v) for v in order], [f"{v:g}" if numeric else v for v in order])
        ax.xaxis.set_minor_locator(NullLocator())
    if not numeric:
        ax.set_xlim(-0.5, len(order) - 0.5)
    which = "last" if key == "final_val_accuracy" else "best"
    ax.set(xlabel=setting + (" (log scale)" if log_axis else ""), ylabel=f"{which} epoch's validation accuracy (%)",
           title=title or f"Validation accuracy against {setting}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return finish_figure(fig, path, show=show)

