"""Choose a learning rate on validation data, and test only the choice.

05_experiment_architectures.py points here: with `--lr-sweep` it loads the
data (its section 1), then calls `run` below instead of comparing networks.
The first --arch network is trained at each learning rate with every seed,
by 05's own `train_once` (handed in, so this file imports no lesson); each
learning rate is judged by its validation accuracy, and the test set is read
for the chosen one only.

Run it
    python 05_experiment_architectures.py --arch two-layer --lr-sweep 0.0001,0.001,0.01,0.1
    python 05_experiment_architectures.py --quick --lr-sweep 0.001,0.01      # one seed, seconds

Writes lr_sweep.png and lr_sweep.json (chosen_lr, chosen by validation).

Why a file of its own: a sweep is a second experiment (one network, many
learning rates) beside 05's (many networks, one learning rate); in 05 it sat
between the comparison and its main(). It uses dl_utils and libraries, never
a lesson.
"""

import argparse
import math
import statistics

import torch

import dl_utils


def lr_list(text: str) -> list[float]:
    """argparse type: comma-separated positive learning rates, e.g. 0.0001,0.001,0.01."""
    values = [dl_utils.positive_float(part) for part in text.split(",") if part.strip()]
    if len(values) < 2:
        raise argparse.ArgumentTypeError(f"give at least two learning rates separated by commas, got {text!r}")
    return sorted(set(values))


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--lr-sweep: choose a learning rate on validation (extras/lr_sweep.py)")
    group.add_argument("--lr-sweep", type=lr_list, default=None, metavar="LR,LR,...",
                       help="instead of comparing networks, train the first --arch at each of these learning "
                            "rates (every seed), e.g. 0.0001,0.001,0.01,0.1: a factor of 10 apart, because a "
                            "good learning rate is found on a log scale")


def choose_by_validation(rows: list[dict]) -> dict:
    """The sweep's choice: the row with the best mean VALIDATION accuracy.

    Never the test accuracy: choosing by it would make the test set part of
    training (see "Train, Validation & Test Sets"), and the chosen number
    would flatter (05 --leakage measures by how much). A learning rate at
    which some seed diverged ranks below every one at which none did.
    """
    usable = [row for row in rows if row["val_accuracy"] is not None]
    if not usable:
        raise dl_utils.CourseError("Every run of the sweep diverged (the loss became NaN): try smaller learning "
                                   "rates, e.g. --lr-sweep 0.0001,0.001,0.01.")
    return max(usable, key=lambda row: (row["diverged_runs"] == 0, row["val_accuracy"]))


def mean_or_none(values: list[float]):
    finite = [v for v in values if math.isfinite(v)]
    return statistics.mean(finite) if finite else None


def test_accuracy(model, data) -> float:
    """The test set, read once for one trained model."""
    return dl_utils.evaluate(model, data.test_loader, torch.nn.CrossEntropyLoss())["accuracy"]


def run(args, data, device, *, train_once, name: str, seeds: list[int]) -> dict:
    """Train one network at each learning rate (all seeds), choose by validation, test the choice once.

    `train_once(arch, seed=, lr=, data=, args=, device=)` is 05's: it returns
    (model, dl_utils.summarize_run results) and logs the run in experiments.csv.
    """
    import matplotlib.pyplot as plt

    epochs = f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}"
    dl_utils.step(f"2. Learning-rate sweep: {name}, {epochs}, seeds {seeds}")
    print("Each learning rate is judged by its validation accuracy (the last epoch's, mean over seeds).")
    rows, models = [], {}  # models: lr -> the trained models, kept until the choice is made
    for lr in args.lr_sweep:
        val, models[lr] = [], []
        for seed in seeds:
            try:  # test=False: the sweep's runs leave the test set alone
                model, results = train_once(args.arch[0], seed=seed, lr=lr, data=data, args=args, device=device,
                                            test=False)
                val.append(results["final_val_accuracy"])
                models[lr].append(model)
            except dl_utils.CourseError:  # the loss became NaN: a result too ("diverged")
                val.append(float("nan"))
        row = {"lr": lr, "val_accuracy": mean_or_none(val), "val_accuracy_per_seed": val,
               "diverged_runs": sum(not math.isfinite(v) for v in val)}
        rows.append(row)
        shown = f"{100 * row['val_accuracy']:.2f}%" if row["val_accuracy"] is not None else "diverged"
        finite = [v for v in val if math.isfinite(v)]
        print(f"  lr {lr:<8g} validation accuracy {shown}"
              + (f" (range {100 * min(finite):.2f}-{100 * max(finite):.2f})" if len(finite) > 1 else "")
              + (f", {row['diverged_runs']} of {len(val)} runs diverged" if row["diverged_runs"] else ""))
    chosen = choose_by_validation(rows)
    # The test set is read for the chosen learning rate only, once, to report it.
    chosen["test_accuracy_per_seed"] = [test_accuracy(model, data) for model in models[chosen["lr"]]]
    chosen["test_accuracy"] = statistics.mean(chosen["test_accuracy_per_seed"])
    print(f"Chosen by validation: lr {chosen['lr']:g}. Its test accuracy: {100 * chosen['test_accuracy']:.2f}%")

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for row in rows:
        finite = [100 * a for a in row["val_accuracy_per_seed"] if math.isfinite(a)]
        ax.plot([row["lr"]] * len(finite), finite, "o", color=dl_utils.VAL_COLOR, alpha=0.35)
    ok = [row for row in rows if row["val_accuracy"] is not None]
    ax.plot([row["lr"] for row in ok], [100 * row["val_accuracy"] for row in ok], "o-", color=dl_utils.VAL_COLOR,
            linewidth=2, label="validation accuracy, mean over seeds (faint dots: each seed)")
    ax.plot([chosen["lr"]], [100 * chosen["test_accuracy"]], "*", color="black", markersize=14,
            label=f"chosen lr {chosen['lr']:g}: its test accuracy, read once ({100 * chosen['test_accuracy']:.2f}%)")
    ax.set_xscale("log")  # learning rates differ by factors of 10: equal steps on a log axis
    ax.set(xlabel="learning rate (log scale)", ylabel="accuracy (%)",
           title=f"{name}, Adam, {epochs}, batch {args.batch_size}, {len(seeds)} seed"
                 f"{'s' if len(seeds) > 1 else ''}" + (f", {args.subset:,} images" if args.subset else "")
                 + ":\nchoose on validation, test once")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    path = dl_utils.finish_figure(fig, args.out_dir / "lr_sweep.png", show=args.show)
    results = {"script": "05_experiment_architectures", "mode": "lr_sweep", "arch": name,
               "epochs": args.epochs, "seeds": seeds, "subset": args.subset,
               "device": dl_utils.device_name(device), "chosen_by": "val_accuracy", "chosen_lr": chosen["lr"],
               "chosen_val_accuracy": chosen["val_accuracy"], "chosen_test_accuracy": chosen["test_accuracy"],
               "lr_sweep": rows}
    dl_utils.save_results(args.out_dir, "lr_sweep", results)
    print(f"Saved {path.name} and lr_sweep.json in {args.out_dir}")
    return results
