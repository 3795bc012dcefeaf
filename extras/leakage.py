"""Data leakage, measured: how much does choosing on the test set flatter the number you report?

05_experiment_architectures.py points here: with `--leakage RUNS` it loads
the data (its section 1), then calls `run` below instead of comparing
networks. The first --arch network is trained RUNS times, differing only by
its seed, by 05's own `train_once` (handed in, so this file imports no
lesson); then "the best" is chosen twice: by test accuracy (the leak) and
by validation accuracy (the rule).

Run it
    python 05_experiment_architectures.py --leakage 20 --subset 5000 --epochs 2   # about half a minute
    python 05_experiment_architectures.py --quick --leakage 5                     # seconds

Writes leakage.png and leakage.json.

Why a file of its own: it is a second experiment about the test set, not
about architectures; in 05 it sat between the comparison and its main().
It uses dl_utils and libraries, never a lesson.
"""

import argparse
import statistics

import torch

import dl_utils

LEAKAGE_SPLITS = 1000  # random halvings of the test set: the optimism's mean is then known to ~1/30 of its spread


def runs_type(text: str) -> int:
    """argparse type: the number of runs, at least 2 (one run leaves nothing to choose)."""
    value = dl_utils.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"choosing the best needs at least 2 runs, got {value}")
    return value


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--leakage: choosing on the test set, measured (extras/leakage.py)")
    group.add_argument("--leakage", type=runs_type, default=0, metavar="RUNS",
                       help="instead of comparing networks: train the first --arch with RUNS seeds, pick the best "
                            "by test and by validation accuracy, and measure how much each choice's score flatters "
                            "on half of the test set it was not picked on (leakage.png); 0 = off")


# To see what the choice does to the reported number, the test set is cut
# in two halves: A, the half you look at when choosing, and B, which plays
# the new digits nobody has seen. A winner picked on A looks better on A than
# it is: part of its lead is luck on those particular 5,000 images, and that
# luck does not come along to B. The validation-picked winner was chosen
# without looking at A or B, so A and B agree on it, on average. One halving
# is one coin toss; LEAKAGE_SPLITS random halvings give the average and its
# spread.
def selection_optimism(correct: torch.Tensor, val_accuracy: list[float], *, splits: int, seed: int = 0) -> dict:
    """`correct` (runs, N) is 1 where a run got a test image right. For `splits` random halvings of the
    N images into A and B, pick the best run on A and the best on validation; return their A - B gaps."""
    runs, n = correct.shape
    by_val = max(range(runs), key=lambda i: val_accuracy[i])
    generator = torch.Generator().manual_seed(seed)
    test_gap, val_gap = [], []
    for _ in range(splits):
        order = torch.randperm(n, generator=generator)
        on_a, on_b = correct[:, order[:n // 2]].mean(dim=1), correct[:, order[n // 2:]].mean(dim=1)  # (runs,) each
        by_test = int(on_a.argmax())
        test_gap.append((on_a[by_test] - on_b[by_test]).item())
        val_gap.append((on_a[by_val] - on_b[by_val]).item())
    spread = statistics.stdev if splits > 1 else (lambda values: 0.0)
    return {"splits": splits, "picked_by_test_gap_mean": statistics.mean(test_gap),
            "picked_by_test_gap_std": spread(test_gap), "picked_by_val_gap_mean": statistics.mean(val_gap),
            "picked_by_val_gap_std": spread(val_gap), "picked_by_test_gaps": test_gap, "picked_by_val_gaps": val_gap}


def plot_leakage(on_a, on_b, by_test: int, by_val: int, optimism: dict, path, *, title: str, show: bool):
    """leakage.png: each run on the two halves of one halving, and the gaps over all halvings."""
    import matplotlib.pyplot as plt

    fig, (ax_runs, ax_gap) = plt.subplots(1, 2, figsize=(13, 5))
    ax_runs.plot(100 * on_a, 100 * on_b, "o", color="tab:gray", alpha=0.6, label=f"the {len(on_a)} runs")
    ax_runs.plot([100 * on_a[by_test]], [100 * on_b[by_test]], "o", color="tab:red", markersize=11,
                 label="picked by test (best on A)")
    ax_runs.plot([100 * on_a[by_val]], [100 * on_b[by_val]], "s", color="tab:blue", markersize=9,
                 fillstyle="none", markeredgewidth=2, label="picked by validation")
    low, high = 100 * min(on_a.min(), on_b.min()) - 0.1, 100 * max(on_a.max(), on_b.max()) + 0.1
    ax_runs.plot([low, high], [low, high], ":", color="black", label="same on A and B")
    ax_runs.set(xlabel="accuracy on test half A, looked at (%)", ylabel="accuracy on test half B, new (%)",
                title="One halving: each run on the two halves")
    bins = 30
    ax_gap.hist([100 * g for g in optimism["picked_by_test_gaps"]], bins=bins, alpha=0.6, color="tab:red",
                label=f"picked by test: mean {100 * optimism['picked_by_test_gap_mean']:+.2f}")
    ax_gap.hist([100 * g for g in optimism["picked_by_val_gaps"]], bins=bins, alpha=0.6, color="tab:blue",
                label=f"picked by validation: mean {100 * optimism['picked_by_val_gap_mean']:+.2f}")
    ax_gap.axvline(0, color="black", linestyle=":")
    ax_gap.set(xlabel="winner's accuracy on A minus on B (points)", ylabel="halvings",
               title=f"{optimism['splits']} random halvings: how much the reported score flatters")
    for ax in (ax_runs, ax_gap):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return dl_utils.finish_figure(fig, path, show=show)


def run(args, data, device, *, train_once, name: str) -> dict:
    """Train --leakage runs; compare choosing the best by test accuracy with choosing it by validation.

    `train_once(arch, seed=, lr=, data=, args=, device=)` is 05's: it returns
    (model, dl_utils.summarize_run results) and logs the run in experiments.csv.
    """
    n_runs, epochs = args.leakage, f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}"
    seeds = [args.seed + i for i in range(n_runs)]
    dl_utils.step(f"2. Data leakage: {n_runs} runs of {name} that differ only by their seed "
                  f"({epochs}, lr {args.lr:g})")
    correct, val = [], []
    for seed in seeds:
        model, results = train_once(args.arch[0], seed=seed, lr=args.lr, data=data, args=args, device=device)
        probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
        correct.append((probabilities.argmax(dim=1) == labels).float())  # (N,) 1 = right
        val.append(results["final_val_accuracy"])
    correct = torch.stack(correct)  # (runs, N)
    n = correct.shape[1]

    # One halving, told as a story: the first of the LEAKAGE_SPLITS.
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    on_a, on_b = correct[:, order[:n // 2]].mean(dim=1), correct[:, order[n // 2:]].mean(dim=1)
    by_test, by_val = int(on_a.argmax()), max(range(n_runs), key=lambda i: val[i])
    print(f"Half A ({n // 2:,} test images) is the one you look at; half B ({n - n // 2:,}) plays new data.")
    print(f"  Picked by test (half A): seed {seeds[by_test]}, {100 * on_a[by_test]:.2f}% on A, "
          f"{100 * on_b[by_test]:.2f}% on B")
    print(f"  Picked by validation:     seed {seeds[by_val]}, {100 * on_a[by_val]:.2f}% on A, "
          f"{100 * on_b[by_val]:.2f}% on B")
    print(f"  All {n_runs} runs: mean {100 * on_a.mean():.2f}% on A, {100 * on_b.mean():.2f}% on B; "
          f"best on A {100 * on_a.max():.2f}%, worst {100 * on_a.min():.2f}%")
    optimism = selection_optimism(correct, val, splits=LEAKAGE_SPLITS, seed=args.seed)
    print(f"Over {LEAKAGE_SPLITS} random halvings, the winner's accuracy on the half it was picked on minus "
          f"on the other half:\n  picked by test:       {100 * optimism['picked_by_test_gap_mean']:+.2f} points "
          f"(std {100 * optimism['picked_by_test_gap_std']:.2f}): the score you would report flatters\n"
          f"  picked by validation: {100 * optimism['picked_by_val_gap_mean']:+.2f} points "
          f"(std {100 * optimism['picked_by_val_gap_std']:.2f}): an honest estimate")

    path = plot_leakage(
        on_a, on_b, by_test, by_val, optimism, args.out_dir / "leakage.png", show=args.show,
        title=f"Choosing the best of {n_runs} seeds of {name} ({epochs}, batch {args.batch_size}"
              + (f", {args.subset:,} training images" if args.subset else "") + ") by test vs by validation")
    results = {"script": "05_experiment_architectures", "mode": "leakage", "arch": name,
               "runs": n_runs, "seeds": seeds, "epochs": args.epochs, "lr": args.lr, "subset": args.subset,
               "device": dl_utils.device_name(device), "val_accuracy": val,
               "test_accuracy": correct.mean(dim=1).tolist(),
               "one_split": {"picked_by_test": {"seed": seeds[by_test], "on_a": on_a[by_test].item(),
                                                "on_b": on_b[by_test].item()},
                             "picked_by_val": {"seed": seeds[by_val], "on_a": on_a[by_val].item(),
                                               "on_b": on_b[by_val].item()},
                             "mean_on_a": on_a.mean().item(), "mean_on_b": on_b.mean().item()},
               "optimism": {k: v for k, v in optimism.items() if not k.endswith("gaps")}}
    dl_utils.save_results(args.out_dir, "leakage", results)
    print(f"Saved {path.name} and leakage.json in {args.out_dir}")
    return results
