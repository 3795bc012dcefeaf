"""The claims ledger: every verdict the course states, measured so that it survives its own noise.

Each CLAIM below compares a reference (the lesson's default) with one change
(a "condition"). The two differ in that one cause only: the same lesson, the
same data split, the same seeds. Every condition is trained with at least 3
seeds and judged on VALIDATION accuracy; no choice and no verdict reads the
test set. One rule decides every verdict, stated once here (RULE below):

    effect  = mean validation accuracy (changed) - mean (reference), in points
    spread  = the standard error of that difference, sqrt(s_a^2/n_a + s_b^2/n_b),
              s = the standard deviation over seeds, n = the number of seeds
    verdict = "effect" if |effect| > 2 * spread, else "within noise"

The validation accuracy of a run is its last epoch's (the weights it keeps),
on the 5,000 validation images every run shares.

A claim about a METHOD (a loss, an optimizer, a schedule, a normalisation, an
activation, a layer) gives each condition its own learning rate: every lr
of the condition's grid is trained with seeds 0-2, the lr with the best mean
validation accuracy is kept (a best lr at the grid's edge first grows the
grid a step that way, until the best is inside), and the condition is then measured with fresh
seeds 3-5 at that lr, so the choice does not flatter its own measurement. A
claim about a SETTING (hidden size, dropout, epochs, batch size, pixel order)
runs both conditions at the lesson's own lr with seeds 0-2.

Each run is the lesson's own code with the flags a learner would type
(03's main(); 05's and 06's training functions with their parsed flags).
Every run reads the test set once, after training, and stores it; the ledger
reports it only for the measured conditions and never chooses or judges by it
(the lr-grid runs' test accuracies sit unused in claims_runs.json).

    python benchmarks/claims.py --data-dir DATA_DIR             # the runs not done yet, then the ledger
    python benchmarks/claims.py --data-dir DATA_DIR --only loss_mse onecycle
    python benchmarks/claims.py --ledger                        # rebuild the ledger from the stored runs

About 40 minutes on a 2-core CPU for all of them (2 runs at a time, one
thread each). Writes, in docs/results/:
    claims_runs.json    every run: lesson, flags, seed, validation accuracy per epoch, ...
    claims.json         the ledger: one entry per claim, with its numbers and verdict
    what_mattered.md    the ledger as a table ranked by effect, and a section per claim
                        (the docs link to these: what_mattered.md#loss_mse)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import math
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

RESULTS = REPO / "docs" / "results"
RULE = ("effect = mean validation accuracy (changed) - mean (reference), in points; spread = the standard "
        "error of that difference, sqrt(s_a^2/n_a + s_b^2/n_b) over seeds; verdict = 'effect' if |effect| > "
        "2 * spread, else 'within noise'. Validation accuracy: the last epoch's, on the 5,000 validation images.")
SEEDS = [0, 1, 2]  # settings: both conditions; methods: the lr grid
FRESH_SEEDS = [3, 4, 5]  # methods: the measurement at the chosen lr
LESSONS = {"03": "03_train_mnist", "05": "05_experiment_architectures", "06": "06_cnn_mnist"}
DEFAULT_LR = {"03": 1e-3, "05": 1e-3, "06": 7e-3}  # each lesson's LR setting

ADAM = [3e-4, 1e-3, 3e-3]  # around Adam's usual 1e-3, a factor 3 apart
ADAM_WIDE = [3e-4, 1e-3, 3e-3, 1e-2]  # for methods that may want a larger step (MSE, batch norm)
SGD = [0.01, 0.03, 0.1, 0.3]  # plain SGD needs a larger lr than Adam
SGD_RAW = [0.01, 0.03, 0.1, 0.3, 1.0]  # raw pixels in [0, 1] give smaller gradients: the grid goes higher
MOMENTUM = [1e-3, 3e-3, 1e-2, 3e-2]  # momentum 0.9 multiplies the step about 10x: the grid goes lower
ONECYCLE = [3e-3, 7e-3, 1.5e-2]  # OneCycle's PEAK lr, around 06's 7e-3
CONSTANT = [3e-4, 1e-3, 3e-3]  # a constant lr for 06's CNN, around Adam's usual 1e-3
MAX_EXTENSIONS = 3  # a grid whose best lr is at an edge grows one step that way, at most this often


def cond(label: str, lesson: str, flags: list | None = None, lrs: list | None = None) -> dict:
    """One condition: `lesson`'s code with `flags`; `lrs` = its own lr grid (a method claim) or None."""
    return {"label": label, "lesson": lesson, "flags": list(flags or []), "lrs": lrs}


# id -> (setting varied, the claim, reference, changed). The docs cite
# docs/results/what_mattered.md#ID beside each sentence that states the verdict.
CLAIMS = {
    "hidden_32": ("hidden size", "03's MLP with 32 hidden neurons instead of 128",
                  cond("hidden 128", "03"), cond("hidden 32", "03", ["--hidden", "32"])),
    "hidden_512": ("hidden size", "03's MLP with 512 hidden neurons instead of 128",
                   cond("hidden 128", "03"), cond("hidden 512", "03", ["--hidden", "512"])),
    "underfit_hidden_2": ("hidden size", "03's MLP squeezed through 2 hidden neurons (underfitting)",
                          cond("hidden 128", "03"), cond("hidden 2", "03", ["--hidden", "2"])),
    "dropout": ("dropout", "dropout 0.2 on 03's hidden layer",
                cond("no dropout", "03"), cond("dropout 0.2", "03", ["--dropout", "0.2"])),
    "batch_128": ("batch size", "batch 128 instead of 64 in 03, same lr and epochs",
                  cond("batch 64", "03"), cond("batch 128", "03", ["--batch-size", "128"])),
    "epochs_20": ("epochs", "20 epochs instead of 10 in 03",
                  cond("10 epochs", "03"), cond("20 epochs", "03", ["--epochs", "20"])),
    "lr_too_high": ("learning rate", "Adam lr 0.05 instead of 0.001 in 03 (a step too big)",
                    cond("lr 0.001", "03"), cond("lr 0.05", "03", ["--lr", "0.05"])),
    "pixels_shuffled_mlp": ("pixel order", "the MLP on digits whose 784 pixels are shuffled by one fixed permutation",
                            cond("natural pixels", "03"), cond("shuffled pixels", "03", ["--pixels", "shuffled"])),
    "pixels_shuffled_cnn": ("pixel order", "the CNN on digits whose 784 pixels are shuffled by one fixed permutation",
                            cond("natural pixels", "06"), cond("shuffled pixels", "06", ["--pixels", "shuffled"])),
    "init_zeros": ("initialisation", "every weight starting at 0 instead of PyTorch's random start "
                   "(2 epochs on 5,000 images)",
                   cond("random start", "03", ["--epochs", "2", "--subset", "5000"]),
                   cond("all zeros", "03", ["--epochs", "2", "--subset", "5000", "--init", "zeros"])),
    "random_labels": ("labels", "training labels shuffled, so there is nothing to learn "
                      "(3 epochs on 5,000 images; validation keeps the true labels)",
                      cond("true labels", "03", ["--epochs", "3", "--subset", "5000"]),
                      cond("random labels", "03", ["--epochs", "3", "--subset", "5000", "--labels", "random"])),
    "normalize_same_lr": ("input normalisation", "raw pixels in [0, 1] instead of standardised ones, "
                          "both with SGD at lr 0.01 (the same lr for both)",
                          cond("standardised", "03", ["--optimizer", "sgd", "--lr", "0.01"]),
                          cond("raw [0, 1]", "03", ["--optimizer", "sgd", "--lr", "0.01", "--normalize", "none"])),
    "normalize_own_lr": ("input normalisation", "raw pixels in [0, 1] instead of standardised ones, "
                         "SGD with each its own lr",
                         cond("standardised", "03", ["--optimizer", "sgd"], SGD),
                         cond("raw [0, 1]", "03", ["--optimizer", "sgd", "--normalize", "none"], SGD_RAW)),
    "normalize_centre_only": ("input normalisation", "centring only (x - mean, no division by the std) "
                              "instead of standardising, SGD with each its own lr",
                              cond("standardised", "03", ["--optimizer", "sgd"], SGD),
                              cond("centred only", "03", ["--optimizer", "sgd", "--normalize", "center"], SGD_RAW)),
    "loss_mse": ("loss", "softmax + squared error (MSE) instead of cross-entropy, each its own lr",
                 cond("cross-entropy", "03", [], ADAM_WIDE), cond("MSE", "03", ["--loss", "mse"], ADAM_WIDE)),
    "batch_norm": ("batch norm", "batch norm on 03's hidden layer, each its own lr",
                   cond("no batch norm", "03", [], ADAM_WIDE), cond("batch norm", "03", ["--batch-norm"], ADAM_WIDE)),
    "sgd_vs_adam": ("optimizer", "plain SGD instead of Adam, each its own lr",
                    cond("Adam", "03", [], ADAM_WIDE), cond("SGD", "03", ["--optimizer", "sgd"], SGD)),
    "momentum": ("momentum", "SGD with momentum 0.9 instead of plain SGD, each its own lr",
                 cond("SGD", "03", ["--optimizer", "sgd"], SGD),
                 cond("SGD + momentum 0.9", "03", ["--optimizer", "sgd", "--momentum", "0.9"], MOMENTUM)),
    "relu_vs_tanh": ("activation", "tanh instead of ReLU in 05's two-layer network (5 epochs), each its own lr",
                     cond("ReLU", "05", ["--arch", "two-layer"], ADAM),
                     cond("tanh", "05", ["--arch", "tanh"], ADAM)),
    "depth": ("depth", "05's three-layer network (784-256-128-10) instead of two-layer (784-128-10), "
              "5 epochs, each its own lr",
              cond("two layers", "05", ["--arch", "two-layer"], ADAM),
              cond("three layers", "05", ["--arch", "three-layer"], ADAM)),
    "no_activation": ("activation", "no activation between the two layers (one linear map) instead of ReLU, "
                      "5 epochs, each its own lr",
                      cond("ReLU", "05", ["--arch", "two-layer"], ADAM),
                      cond("no activation", "05", ["--arch", "no-activation"], ADAM)),
    "onecycle": ("lr schedule", "06's CNN with a constant lr instead of OneCycle (2 epochs), each its own lr",
                 cond("OneCycle", "06", [], ONECYCLE), cond("constant lr", "06", ["--schedule", "constant"], CONSTANT)),
    "label_smoothing": ("label smoothing", "06's CNN without label smoothing (0 instead of 0.05)",
                        cond("smoothing 0.05", "06"), cond("no smoothing", "06", ["--label-smoothing", "0"])),
    "augment": ("augmentation", "06's CNN trained on randomly rotated and shifted digits (2 epochs)",
                cond("plain digits", "06"), cond("augmented", "06", ["--augment"])),
    "cnn_vs_mlp": ("architecture", "06's CNN (2 epochs, OneCycle) instead of 03's MLP (10 epochs), "
                   "each with its own lesson's recipe and its own lr",
                   cond("MLP (03)", "03", [], ADAM_WIDE), cond("CNN (06)", "06", [], ONECYCLE)),
}


# ---------------------------------------------------------------------------
# One run: the lesson's own code with the flags (in a worker process)
# ---------------------------------------------------------------------------
_lessons: dict = {}


def _lesson(number: str):
    if number not in _lessons:
        from bench_training import load_lesson
        _lessons[number] = load_lesson(LESSONS[number])
    return _lessons[number]


def _one_thread():
    import torch
    torch.set_num_threads(1)  # two runs at a time on two cores


def train(lesson: str, flags: list, seed: int, data_dir: str) -> dict:
    """Train once; return the validation accuracy per epoch, the test accuracy, the time and the load."""
    import dl_utils
    from course import records

    module = _lesson(lesson)
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        argv = [*flags, "--seed", str(seed), "--data-dir", data_dir, "--out-dir", out]
        if lesson == "03":
            result = module.main(argv)
            history, test = result["history"], result["test_accuracy"]
        else:
            args = dl_utils.parse_args(module.build_parser(), argv)
            dl_utils.set_seed(seed)
            device, _ = dl_utils.get_device(args.device)
            if lesson == "05":
                data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                                seed=args.seed, device=device, pixels=args.pixels)
                _, result = module.train_once(args.arch[0], seed=seed, lr=args.lr, data=data, args=args,
                                              device=device)
                history, test = result["history"], result["test_accuracy"]
            else:
                model = module.CNN(dropout=args.dropout)
                data = module.load_data(args, device)
                _, history, test_metrics = module.train(model, data, args, device)
                test = test_metrics["accuracy"]
    return {"val_accuracy": history["val_accuracy"], "train_seconds": round(sum(history["seconds"]), 2),
            "test_accuracy": test, "load_average": records.machine_info().get("load_average")}


def run_key(lesson: str, flags: list, seed: int) -> str:
    return " ".join([LESSONS[lesson] + ".py", *flags, "--seed", str(seed)])


def with_lr(condition: dict, lr: float | None) -> list:
    return condition["flags"] + (["--lr", f"{lr:g}"] if lr is not None else [])


# ---------------------------------------------------------------------------
# The ledger: choose each method's lr on validation, then apply the RULE
# ---------------------------------------------------------------------------
def final_val(runs: dict, lesson: str, flags: list, seeds: list) -> list | None:
    found = [runs.get(run_key(lesson, flags, s)) for s in seeds]
    return None if None in found else [r["val_accuracy"][-1] for r in found]


def nice(lr: float) -> float:
    """The nearest of 1, 1.5, 3, 7 x 10^k (on a log scale): the values the grids are made of."""
    k = math.floor(math.log10(lr))
    options = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in (1, 1.5, 3, 7)]
    return float(f"{min(options, key=lambda o: abs(math.log(o / lr))):.3g}")


def lr_grid(runs: dict, condition: dict) -> tuple[list[float], dict | None]:
    """The condition's grid, each lr's mean validation accuracy over SEEDS (None while runs are missing).

    A best lr at the grid's edge says the best may lie beyond it: the grid grows one step that way (the
    ratio of its last two values) until the best is inside it, at most MAX_EXTENSIONS steps.
    """
    lrs = sorted(condition["lrs"])
    for _ in range(MAX_EXTENSIONS + 1):
        grid = {}
        for lr in lrs:
            values = final_val(runs, condition["lesson"], with_lr(condition, lr), SEEDS)
            if values is None:
                return lrs, None
            grid[f"{lr:g}"] = round(100 * statistics.mean(values), 3)
        best = float(max(grid, key=grid.get))  # the first of equals: the smaller lr
        if best == lrs[0]:
            lrs = [nice(lrs[0] * lrs[0] / lrs[1])] + lrs
        elif best == lrs[-1]:
            lrs = lrs + [nice(lrs[-1] * lrs[-1] / lrs[-2])]
        else:
            break
    else:
        return lrs[1:] if best == lrs[1] else lrs[:-1], grid  # at the limit: the grid as measured
    return lrs, grid


def choose_lr(runs: dict, condition: dict) -> tuple[float | None, dict | None]:
    """A method's lr: the grid's best mean validation accuracy over SEEDS (None when not all are run)."""
    if condition["lrs"] is None:
        return None, None
    _, grid = lr_grid(runs, condition)
    if grid is None:
        return None, None
    return float(max(grid, key=grid.get)), grid


def measure(runs: dict, condition: dict) -> dict | None:
    """The condition's per-seed validation accuracies (points) at its lr; None when runs are missing."""
    lr, grid = choose_lr(runs, condition)
    if condition["lrs"] is not None and lr is None:
        return None
    seeds = SEEDS if condition["lrs"] is None else FRESH_SEEDS
    flags = with_lr(condition, lr)
    values = final_val(runs, condition["lesson"], flags, seeds)
    if values is None:
        return None
    tests = [runs[run_key(condition["lesson"], flags, s)]["test_accuracy"] for s in seeds]
    return {"label": condition["label"], "command": f"python {LESSONS[condition['lesson']]}.py {' '.join(flags)}",
            "lr": lr if lr is not None else DEFAULT_LR[condition["lesson"]] if "--lr" not in flags
            else float(flags[flags.index("--lr") + 1]),
            "lr_chosen_on_validation": grid, "seeds": seeds,
            "val_accuracy_per_seed": [round(100 * v, 2) for v in values],
            "val_accuracy_mean": round(100 * statistics.mean(values), 3),
            "val_accuracy_std": round(100 * statistics.stdev(values), 3),
            "test_accuracy_mean": round(100 * statistics.mean(tests), 3)}


def judge(reference: dict, changed: dict) -> dict:
    """The RULE, applied to two measured conditions (accuracies in points)."""
    effect = statistics.mean(changed["val_accuracy_per_seed"]) - statistics.mean(reference["val_accuracy_per_seed"])
    spread = math.sqrt(statistics.stdev(reference["val_accuracy_per_seed"]) ** 2 / len(reference["seeds"])
                       + statistics.stdev(changed["val_accuracy_per_seed"]) ** 2 / len(changed["seeds"]))
    return {"effect": round(effect, 2), "spread": round(spread, 2),
            "verdict": "effect" if abs(effect) > 2 * spread else "within noise"}


def build_ledger(runs: dict) -> list[dict]:
    ledger = []
    for claim_id, (setting, claim, reference, changed) in CLAIMS.items():
        a, b = measure(runs, reference), measure(runs, changed)
        if a is None or b is None:
            continue
        ledger.append({"id": claim_id, "setting": setting, "claim": claim, "runs": ["claims_runs.json"],
                       "seeds": sorted(set(a["seeds"]) | set(b["seeds"])), "split": "validation",
                       "method": reference["lrs"] is not None, "reference": a, "changed": b, **judge(a, b)})
    return ledger


def write_ledger(ledger: list[dict], machine: dict) -> None:
    (RESULTS / "claims.json").write_text(json.dumps(
        {"rule": RULE, "units": "validation accuracy, percentage points", "machine": machine,
         "claims": ledger}, indent=1) + "\n")
    (RESULTS / "what_mattered.md").write_text(render(ledger, machine))


def phrase(entry: dict, prefix: str = "docs/results/") -> str:
    """How the docs quote an entry: its verdict, effect and spread, and the link (tests/test_claims.py checks)."""
    verdict = "within noise" if entry["verdict"] == "within noise" else "an effect"
    return (f"**{verdict}** ({entry['effect']:+.2f} ± {entry['spread']:.2f}, "
            f"[ledger: {entry['id']}]({prefix}what_mattered.md#{entry['id']}))")


def compact_table(ledger: list[dict], prefix: str = "docs/results/") -> str:
    """The ranked table the guide shows ("What mattered"); the same rows as what_mattered.md."""
    rows = ["| rank | what changed (against the lesson's default) | effect on validation accuracy | verdict |",
            "| ---: | --- | ---: | --- |"]
    for rank, e in enumerate(sorted(ledger, key=lambda e: -abs(e["effect"])), 1):
        rows.append(f"| {rank} | [{e['claim']}]({prefix}what_mattered.md#{e['id']}) | "
                    f"{e['effect']:+.2f} ± {e['spread']:.2f} points | {e['verdict']} |")
    return "\n".join(rows)


QUOTED = re.compile(r"\*\*(?:within noise|an effect)\*\* \([+\-]\d+\.\d\d ± \d+\.\d\d, "
                    r"\[ledger: ([\w-]+)\]\(([^)#]*)what_mattered\.md#[\w-]+\)\)")
DOCS = ["README.md", "LEARNING_GUIDE.md", "ML_CONCEPTS_EXPLAINED.md", "docs/PERFORMANCE.md"]


def refresh_docs(ledger: list[dict], root: Path = REPO) -> list[str]:
    """Rewrite the docs' quoted verdicts (phrase) and the guide's table from the ledger; return the changes.

    Reread the sentence around each change: a verdict that flips may need other words.
    """
    entries, changes = {e["id"]: e for e in ledger}, []
    for name in DOCS:
        path = root / name
        text = old = path.read_text(encoding="utf-8")
        text = QUOTED.sub(lambda m: phrase(entries[m.group(1)], m.group(2)) if m.group(1) in entries
                          else m.group(0), text)
        if name == "LEARNING_GUIDE.md":  # the table: from its header row to its last row
            header = compact_table(ledger).splitlines()[0]
            if header in text:
                start = text.index(header)
                end = text.find("\n\n", start)
                text = text[:start] + compact_table(ledger) + (text[end:] if end != -1 else "\n")
        if text != old:
            path.write_text(text, encoding="utf-8")
            changes += [f"{name}: {a.strip()} -> {b.strip()}" for a, b in zip(old.splitlines(), text.splitlines())
                        if a != b]
    return changes


def render(ledger: list[dict], machine: dict) -> str:
    """What mattered: every setting the course varies, ranked by its effect on validation accuracy."""
    ranked = sorted(ledger, key=lambda e: -abs(e["effect"]))
    lines = ["# What mattered: the claims ledger, ranked", "",
             "Generated by `python benchmarks/claims.py` from `claims_runs.json`; the numbers are in "
             "`claims.json`. Do not edit by hand.", "",
             f"Each row changes one thing against the lesson's default and measures validation accuracy "
             f"(the last epoch's, 5,000 images) over 3 seeds. **Rule:** {RULE.split('; verdict')[0]}; "
             "the verdict is *effect* when |effect| > 2 x spread, else *within noise*. A method (loss, "
             "optimizer, schedule, normalisation, activation, layer) gets its own learning rate per condition: "
             "the best of its grid on seeds 0-2 (a best lr at the grid's edge first grows the grid that way), "
             "then measured on fresh seeds 3-5. The test set is never used "
             "to choose or judge.", "",
             f"Measured on {machine.get('cpu', '?')} ({machine.get('device', '?')}), torch "
             f"{machine.get('torch_version', '?')}, {machine.get('date', '?')}; load average "
             f"{machine.get('load_average', '?')} (2 runs at a time, one thread each).", "",
             "| rank | what changed | lesson | effect (points) | spread | verdict | reference -> changed |",
             "| ---: | --- | --- | ---: | ---: | --- | --- |"]
    for rank, e in enumerate(ranked, 1):
        r, c = e["reference"], e["changed"]
        lines.append(f"| {rank} | [{e['claim']}](#{e['id']}) | {c['command'].split()[1][:2]} | "
                     f"{e['effect']:+.2f} | {e['spread']:.2f} | {e['verdict']} | "
                     f"{r['val_accuracy_mean']:.2f}% -> {c['val_accuracy_mean']:.2f}% |")
    lines += ["", "## The claims, one by one", ""]
    for e in ledger:
        lines += [f"### {e['id']}", "", f"**{e['claim']}** ({e['setting']}): effect {e['effect']:+.2f} points, "
                  f"spread {e['spread']:.2f}: **{e['verdict']}**.", ""]
        for side in ("reference", "changed"):
            m = e[side]
            grid = ""
            if m["lr_chosen_on_validation"]:
                grid = (" lr chosen on validation (seeds 0-2, mean %): "
                        + ", ".join(f"{lr}: {acc:.2f}" for lr, acc in m["lr_chosen_on_validation"].items())
                        + f" -> {m['lr']:g}.")
            lines.append(f"- {side}, {m['label']}: `{m['command']}`, seeds {m['seeds']}: validation "
                         f"{', '.join(f'{v:.2f}' for v in m['val_accuracy_per_seed'])} (mean "
                         f"{m['val_accuracy_mean']:.2f}, std {m['val_accuracy_std']:.2f}).{grid} Test, read once "
                         f"to report: {m['test_accuracy_mean']:.2f}%.")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The runs still missing, then the ledger
# ---------------------------------------------------------------------------
def planned_runs(claim_ids: list[str], runs: dict) -> list[tuple]:
    """(lesson, flags, seed) for every run the claims need, in the order they become choosable."""
    todo, seen = [], set(runs)
    for claim_id in claim_ids:
        for condition in CLAIMS[claim_id][2:]:
            grid = lr_grid(runs, condition)[0] if condition["lrs"] else [None]
            for lr in grid:
                for seed in SEEDS:
                    key = run_key(condition["lesson"], with_lr(condition, lr), seed)
                    if key not in seen:
                        seen.add(key)
                        todo.append((condition["lesson"], with_lr(condition, lr), seed))
    return todo


def fresh_runs(claim_ids: list[str], runs: dict) -> list[tuple]:
    """The fresh-seed runs of the methods whose lr can now be chosen."""
    todo = []
    for claim_id in claim_ids:
        for condition in CLAIMS[claim_id][2:]:
            lr, _ = choose_lr(runs, condition)
            if lr is None:
                continue
            for seed in FRESH_SEEDS:
                key = run_key(condition["lesson"], with_lr(condition, lr), seed)
                if key not in runs and (condition["lesson"], with_lr(condition, lr), seed) not in todo:
                    todo.append((condition["lesson"], with_lr(condition, lr), seed))
    return todo


def execute(todo: list[tuple], runs: dict, data_dir: str, workers: int, save) -> None:
    import multiprocessing

    # spawn, not fork: a forked copy of a process that has started torch's threads can hang
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_one_thread) as pool:
        futures = {pool.submit(train, lesson, flags, seed, data_dir): (lesson, flags, seed)
                   for lesson, flags, seed in todo}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            lesson, flags, seed = futures[future]
            key = run_key(lesson, flags, seed)
            runs[key] = future.result()
            print(f"[{done}/{len(todo)}] {key}: validation {100 * runs[key]['val_accuracy'][-1]:.2f}% "
                  f"({runs[key]['train_seconds']:.0f}s)", flush=True)
            save()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (needed unless --ledger)")
    parser.add_argument("--only", nargs="*", choices=list(CLAIMS), help="claims to run (default: all)")
    parser.add_argument("--ledger", action="store_true", help="only rebuild the ledger from the stored runs")
    parser.add_argument("--docs", action="store_true",
                        help="then rewrite the docs' quoted verdicts and the guide's table from the ledger")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where the files go (default docs/results; a trial: a scratch folder)")
    return parser


def main(argv=None) -> None:
    global RESULTS
    parser = build_parser()
    args = parser.parse_args(argv)
    RESULTS = args.results_dir or RESULTS  # a trial writes elsewhere
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch

    from course import records

    runs_file = RESULTS / "claims_runs.json"
    stored = json.loads(runs_file.read_text()) if runs_file.exists() else {"runs": {}}
    runs = stored["runs"]
    machine = {**records.machine_info(), "device": "cpu (1 thread per run, 2 runs at a time)",
               "torch_version": torch.__version__, "date": __import__("datetime").date.today().isoformat()}

    def save():
        runs_file.write_text(json.dumps({"machine": machine, "runs": dict(sorted(runs.items()))}, indent=0) + "\n")

    if not args.ledger:
        if not args.data_dir:
            parser.error("--data-dir DATA_DIR is needed to train (or --ledger to only rebuild the ledger)")
        claim_ids = args.only or list(CLAIMS)
        while todo := planned_runs(claim_ids, runs):  # again while a grid grows past its edge
            execute(todo, runs, args.data_dir, args.workers, save)
        execute(fresh_runs(claim_ids, runs), runs, args.data_dir, args.workers, save)
        machine["load_average"] = records.machine_info().get("load_average")
        save()
    ledger = build_ledger(runs)
    write_ledger(ledger, stored.get("machine", machine) if args.ledger else machine)
    for e in ledger:
        print(f"{e['id']:24s} {e['effect']:+6.2f} +- {e['spread']:.2f}  {e['verdict']}")
    print(f"{len(ledger)} of {len(CLAIMS)} claims in docs/results/claims.json and what_mattered.md")
    if args.docs:
        changes = refresh_docs(ledger)
        print("\n".join(changes) or "the docs already quote the ledger")
        if changes:
            print("Reread the sentence around each changed line: a flipped verdict may need other words.")


if __name__ == "__main__":
    main()
