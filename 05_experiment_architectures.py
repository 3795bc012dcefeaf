"""05 - An honest experiment: which architecture is better, and how sure are we?

What you will learn
  * how to compare models fairly: same data split, same seeds, same epochs, same optimizer;
    change ONE thing (the architecture)
  * that a difference smaller than the seed-to-seed noise is no difference: run each model
    with several seeds and compare means with their spread
  * what depth (a second hidden layer), the activation (ReLU vs Tanh) and no activation at all
    change, measured; why a network without non-linearities is one linear map, and what such a
    linear classifier still reaches on MNIST (about 92%, not "nothing")
  * what an ensemble of the seeds' models gains (their softmax outputs averaged)
  * to choose on validation accuracy and read the test set once, for the chosen network only
  * side experiments, each in its own file in extras/: choosing a learning rate on validation
    (--lr-sweep), reading your experiment log (--compare-runs), vanishing and exploding gradients
    (--gradients), how much choosing on the test set flatters (--leakage)

Run first: 03_train_mnist.py, which writes the training loop used here and the baseline
network (dl_utils keeps a copy of both); 05 needs none of its files.

Run it
    python 05_experiment_architectures.py                   # 4 networks x 3 seeds x 5 epochs
    python 05_experiment_architectures.py --quick           # 1 epoch on 5,000 images, 1 seed: seconds
    python 05_experiment_architectures.py --arch two-layer tanh --seeds 5   # two networks, 5 seeds
    python 05_experiment_architectures.py --lr-sweep 0.0001,0.001,0.01,0.1  # learning rates, one network
    python 05_experiment_architectures.py --gradients                       # 6 deep MLPs, 400 SGD steps each
    python 05_experiment_architectures.py --leakage 20 --subset 5000 --epochs 2   # pick by test vs by validation
    python 05_experiment_architectures.py --compare-runs hidden             # rank the runs in outputs/experiments.csv
    python 05_experiment_architectures.py --compare-runs lr --where optimizer=adam --where epochs=10
    python 05_experiment_architectures.py --data-dir DATA_DIR    # MNIST kept in DATA_DIR/MNIST/raw/
    python 05_experiment_architectures.py --help                 # every setting, its default and why

Writes (in outputs/, or --out-dir)
    architecture_comparison.png   validation accuracy per epoch, validation accuracy vs parameters, seconds
    05_<Name>.pth                 each network's checkpoint, from the run with the first seed
    05_experiment_architectures.json   the measurements: "architectures" is a list with, per network,
                                  name, parameters, val_accuracy (last epoch, mean over seeds), its
                                  spread, ensemble_val_accuracy, train_seconds, history, one summarize_run
                                  per seed; "chosen": the network ranked first and its test accuracy
    experiments.csv               one row per training run (network x seed)
    lr_sweep.png, lr_sweep.json   with --lr-sweep only (extras/lr_sweep.py): chosen_lr, by validation
    gradient_norms.png, gradients.json   with --gradients only (extras/gradients.py)
    leakage.png, leakage.json     with --leakage only (extras/leakage.py)
    runs_by_<setting>.png, compare_runs.json   with --compare-runs only (extras/compare_runs.py; trains nothing)

How long: on the course's 2-core CPU one run (5 epochs) takes 4 to 9 s, so the default 12 runs
take a little over a minute (README.md "Results"); --quick and --compare-runs: a few
seconds; --gradients and --leakage 20 --subset 5000 --epochs 2: about half a minute each
(README.md "Results" and docs/results/ have the figures). The seconds in the table are those
of YOUR run: a busy CPU inflates them.
"""

import argparse
import contextlib
import io
import math
import statistics
import textwrap
import time

import torch
from torch import nn

import dl_utils
from extras import compare_runs, gradients, leakage, lr_sweep  # the side experiments, a file each

# ---------------------------------------------------------------------------
# Settings: the same for every network. Each is a flag (SEEDS -> --seeds);
# its comment is the --help text, and every one is recorded with the results.
# ---------------------------------------------------------------------------
EPOCHS = 5  # per network and seed: all four are close to their best after 5 (see the plot)
BATCH_SIZE = dl_utils.BATCH_SIZE  # images per step: the course's 64, for every network
LR = 1e-3  # learning rate: Adam's usual starting point (as in 03), the same for every network
SEEDS = 3  # runs per network, seeds SEED, SEED+1, ...: 3 is the fewest that show a spread (--quick: 1)
SEED = 0  # the first seed: the same seeds give the same numbers (on the CPU)
ARCH = ["two-layer", "three-layer", "tanh", "no-activation"]  # which networks to train, in this order
SUBSET = 0  # train on only the first N training images, for a quick look (0 = all 55,000)
PIXELS = "natural"  # "shuffled" moves the 784 pixels of every image by one fixed permutation
SETTINGS = dl_utils.collect_settings(globals())  # the block above: the lesson's flags (build_parser below)


# ---------------------------------------------------------------------------
# 1. The four networks
# ---------------------------------------------------------------------------
# Each flattens the 28 x 28 image into 784 numbers and ends with 10 scores
# (logits), one per digit. They differ in what happens in between.
class TwoLayerNN(dl_utils.SimpleNN):
    """784 -> 128 -> ReLU -> 10: 03's SimpleNN itself (dl_utils keeps the copy written in 03), the baseline.

    101,770 parameters: (784 * 128 + 128) + (128 * 10 + 10). A subclass only
    to give it this lesson's name (its checkpoint and the table carry it);
    its layers and forward() are 03's.
    """

    def __init__(self):
        super().__init__(hidden=128)


class ThreeLayerNN(nn.Module):
    """784 -> 256 -> ReLU -> 128 -> ReLU -> 10: deeper and wider. 235,146 parameters."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 256)  # 784 * 256 + 256 = 200,960
        self.fc2 = nn.Linear(256, 128)  # 256 * 128 + 128 = 32,896
        self.fc3 = nn.Linear(128, 10)  # 128 * 10 + 10 = 1,290
        self.act = nn.ReLU()  # no weights: one module can be used twice

    def forward(self, x):
        x = self.act(self.fc1(self.flatten(x)))  # (B, 1, 28, 28) -> (B, 784) -> (B, 256)
        x = self.act(self.fc2(x))  # (B, 128)
        return self.fc3(x)  # (B, 10)


class TanhNN(nn.Module):
    """TwoLayerNN with Tanh instead of ReLU. Same 101,770 parameters.

    Tanh squashes into (-1, 1) and its slope vanishes for large inputs, so
    gradients through saturated neurons are small; ReLU's slope is 1 for
    every positive input. That is the usual argument for ReLU; on a network
    this shallow, each at its own lr, the measured difference is within seed
    noise (docs/results/what_mattered.md#relu_vs_tanh).
    """

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 128)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.flatten(x))))


class NoActivationNN(nn.Module):
    """TwoLayerNN with the ReLU removed: "break it on purpose". Same 101,770 parameters.

    Without a non-linearity the two layers collapse into ONE linear map:
        fc2(fc1(x)) = W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2) = W x + b
    with W = W2 W1 of shape (10, 784): a single Linear(784, 10), 7,850
    numbers. The hidden layer adds parameters but no power; stacking 100
    such layers would still be one matrix. What such a linear classifier can
    do: give each digit a score that is a weighted sum of pixels, i.e. one
    "template" per digit. On MNIST that already gets about 92% right, far
    above the 10% of guessing, because digits mostly differ in WHERE ink is.
    What it cannot do is combine evidence ("a loop at the top AND a stroke
    below"), which is what the ReLU networks' extra ~5 points are.
    """

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)  # nothing in between

    def forward(self, x):
        return self.fc2(self.fc1(self.flatten(x)))

    def collapsed(self) -> nn.Sequential:
        """Flatten + the single Linear(784, 10) that computes exactly what this network computes."""
        linear = nn.Linear(784, 10, device=self.fc1.weight.device, dtype=self.fc1.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.fc2.weight @ self.fc1.weight)  # W = W2 W1: (10, 128) @ (128, 784)
            linear.bias.copy_(self.fc2.weight @ self.fc1.bias + self.fc2.bias)  # b = W2 b1 + b2
        return nn.Sequential(nn.Flatten(), linear)


# --arch name -> class. The order here is the order of the table and plot.
NETWORKS = {"two-layer": TwoLayerNN, "three-layer": ThreeLayerNN, "tanh": TanhNN, "no-activation": NoActivationNN}
COLORS = {"two-layer": "tab:blue", "three-layer": "tab:purple", "tanh": "tab:orange", "no-activation": "tab:gray"}


# ---------------------------------------------------------------------------
# 2. One training run: the same recipe for every network
# ---------------------------------------------------------------------------
# The seed fixes the initial weights AND the order of the batches, so two
# networks trained with seed 0 see the same batches in the same order: the
# architecture is the only difference. The loop is 03's (dl_utils.fit, which
# prints a line per epoch: 12 runs x 5 epochs would bury the results, so
# those lines are swallowed and each run prints one line instead).
# test=False leaves the test set unread (test_accuracy None): 05 tests only its choice, at the end.
def train_once(arch: str, *, seed: int, lr: float, data, args, device, test: bool = True) -> tuple[nn.Module, dict]:
    """Train network `arch` with `seed`; returns (model, dl_utils.summarize_run results)."""
    dl_utils.set_seed(seed)  # the same seed -> the same initial weights ...
    data.train_loader.generator.manual_seed(seed)  # ... and the same batch order, for every network
    model = NETWORKS[arch]().to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with contextlib.redirect_stdout(io.StringIO()):  # silence fit's per-epoch lines
        history = dl_utils.fit(model, data.train_loader, data.val_loader, loss_fn, optimizer, epochs=args.epochs)
    test_metrics = dl_utils.evaluate(model, data.test_loader, loss_fn) if test else {"accuracy": None, "loss": None}
    hyperparameters = {"arch": arch, "epochs": args.epochs, "batch_size": args.batch_size, "lr": lr,
                       "optimizer": "adam", "seed": seed, "subset": args.subset, "pixels": args.pixels}
    results = dl_utils.summarize_run(script="05_experiment_architectures", hyperparameters=hyperparameters,
                                     history=history, test_metrics=test_metrics,
                                     parameters=dl_utils.count_parameters(model), device=device)
    dl_utils.log_experiment(args.out_dir, results)  # one row per run in experiments.csv
    return model, results


def spread(values: list[float]) -> float:
    """Sample standard deviation (0 for a single value): how much a result moves between seeds."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


# An ensemble for free: 05 trains every network with several seeds anyway.
# Each seed's model makes somewhat different mistakes, so averaging their
# predicted probabilities (softmax outputs) and taking the argmax of the
# average often fixes a digit that one model gets wrong and the others get
# right. The price: n models to store and run for every prediction.
def ensemble_accuracy(probabilities: list[torch.Tensor], labels: torch.Tensor) -> float:
    """Accuracy of the average of several models' softmax outputs, each (N, 10), on `labels` (N,)."""
    average = torch.stack(probabilities).mean(dim=0)  # (n_models, N, 10) -> (N, 10)
    return (average.argmax(dim=1) == labels).float().mean().item()


def train_every_network(args, data, device, seeds: list[int]) -> tuple[list[dict], dict]:
    """Every --arch with every seed: one entry per network (judged on validation), and {arch: its models}."""
    entries, models = [], {}
    for arch in args.arch:
        name = NETWORKS[arch].__name__
        if entries:
            print()  # a blank line between networks
        runs, val_probabilities, models[arch] = [], [], []
        for seed in seeds:
            model, results = train_once(arch, seed=seed, lr=args.lr, data=data, args=args, device=device, test=False)
            runs.append(results)
            models[arch].append(model)  # kept in memory: the chosen network's models take the test at the end
            probabilities, val_labels = dl_utils.collect_predictions(model, data.val_loader, device=device)
            val_probabilities.append(probabilities)  # (5,000, 10): kept for the ensemble below
            # The last epoch's validation accuracy: that of the weights the run keeps.
            print(f"{name:15s} seed {seed}: validation accuracy {100 * results['final_val_accuracy']:.2f}% "
                  f"in {results['train_seconds']:.1f}s")
            if seed == seeds[0]:  # keep the first seed's model, as 03 keeps its one model
                dl_utils.save_checkpoint(
                    args.out_dir / f"05_{name}.pth", model=model, arch=name, model_config={},
                    hyperparameters=results["hyperparameters"],
                    metrics={k: results[k] for k in ("final_val_accuracy", "best_val_accuracy", "train_seconds")},
                    normalization=data.normalization)
        accuracies = [run["final_val_accuracy"] for run in runs]
        entries.append({
            "name": name, "key": arch, "parameters": runs[0]["parameters"],
            "val_accuracy": statistics.mean(accuracies),  # mean over seeds
            "val_accuracy_std": spread(accuracies),
            "val_accuracy_per_seed": accuracies,
            # The seeds' averaged softmax, scored on the validation set (None with one seed).
            "ensemble_val_accuracy": ensemble_accuracy(val_probabilities, val_labels) if len(runs) > 1 else None,
            "train_seconds": statistics.mean(run["train_seconds"] for run in runs),  # per run
            "history": runs[0]["history"],  # the first seed's; every seed's is in "runs"
            "runs": runs,
        })
        if arch == "no-activation":
            # Check the algebra on real digits: the collapsed Linear(784, 10) gives the same logits.
            images, first_model = data.val_loader.images[:1000], models[arch][0]
            with torch.no_grad():
                difference = (first_model(images) - first_model.collapsed()(images)).abs().max().item()
            print(textwrap.fill(f"{name} is one Linear(784, 10) in disguise: W2 @ W1 and W2 @ b1 + b2 give the "
                                f"same logits (largest difference on 1,000 validation images: {difference:.1e}) "
                                f"with 7,850 numbers instead of {entries[-1]['parameters']:,}.", 100))
    return entries, models


# ---------------------------------------------------------------------------
# 3. Is a difference real? Compare it with the seed noise
# ---------------------------------------------------------------------------
# Each seed gives other initial weights and another batch order, and so a
# slightly different validation accuracy. The mean of n seeds wobbles by about
# std / sqrt(n) (its "standard error"). The course calls the standard error
# of a gap, sqrt(se_a^2 + se_b^2), its "noise", everywhere. A rough rule:
# call the gap between two means real only when it is more than twice its
# noise. Within that, the ranking could flip with other seeds. It is a rule
# of thumb, not a proof: 3 seeds estimate the spread itself only roughly,
# and every run here shares one train/validation split.
def compare(a: dict, b: dict) -> dict:
    """Is `a` better than `b`? Returns the gap (in accuracy points), its noise and a verdict."""
    gap = a["val_accuracy"] - b["val_accuracy"]
    n_a, n_b = len(a["val_accuracy_per_seed"]), len(b["val_accuracy_per_seed"])
    noise = math.sqrt(a["val_accuracy_std"] ** 2 / n_a + b["val_accuracy_std"] ** 2 / n_b)
    if min(n_a, n_b) < 2:
        verdict = "cannot tell: one seed shows no noise (run with --seeds 3 or more)"
    elif abs(gap) > 2 * noise:
        verdict = f"{a['name'] if gap > 0 else b['name']} is better, beyond seed noise"
    else:
        verdict = "within seed noise: no measured difference"
    return {"a": a["name"], "b": b["name"], "gap": gap, "noise": noise, "verdict": verdict}


# The course's hypothesis, as (better, worse) pairs of --arch names.
HYPOTHESIS = [("three-layer", "two-layer"), ("two-layer", "tanh"), ("two-layer", "no-activation")]


def print_table_and_hypothesis(entries: list[dict], seeds: list[int]) -> list[dict]:
    """The table of every network, then the course's hypothesis tested against the seed noise."""
    n = len(seeds)
    several = n > 1
    print(f"{'network':15s} {'parameters':>10s}  {'val accuracy':>13s}"
          + ("   +- std   worst - best   ensemble" if several else "") + "   seconds/run")
    for e in entries:
        low, high = 100 * min(e["val_accuracy_per_seed"]), 100 * max(e["val_accuracy_per_seed"])
        print(f"{e['name']:15s} {e['parameters']:>10,}  {100 * e['val_accuracy']:12.2f}%"
              + (f"   +- {100 * e['val_accuracy_std']:.2f}   {low:5.2f} - {high:5.2f}"
                 f"   {100 * e['ensemble_val_accuracy']:7.2f}%" if several else "")
              + f"   {e['train_seconds']:11.1f}")
    print(f"(val accuracy: after the last epoch, the mean of {n} seeds; +- std: how much it moves from seed to seed;\n"
          f" ensemble: the {n} seeds' softmax outputs averaged, one prediction; seconds: per run, train + validation)"
          if several else "(one seed: rerun with --seeds 3 to see the noise)")

    by_key = {e["key"]: e for e in entries}
    comparisons = [compare(by_key[a], by_key[b]) for a, b in HYPOTHESIS if a in by_key and b in by_key]
    if comparisons:
        print("\nThe course's hypothesis: ThreeLayerNN >= TwoLayerNN >= TanhNN, and all beat NoActivationNN. Measured:")
        for c in comparisons:
            noise = f" (noise {100 * c['noise']:.2f}, so real beyond {200 * c['noise']:.2f})" if several else ""
            print(f"  {c['a']} - {c['b']}: {100 * c['gap']:+.2f} points{noise}:\n      {c['verdict']}")
    return comparisons


# ---------------------------------------------------------------------------
# 4. The picture: learning curves, accuracy against size, time
# ---------------------------------------------------------------------------
def plot_comparison(entries: list[dict], path, *, title: str, show: bool):
    """architecture_comparison.png: learning curves, accuracy vs size, time."""
    import matplotlib.pyplot as plt

    fig, (ax_curve, ax_size, ax_time) = plt.subplots(1, 3, figsize=(16, 5.4))
    for entry in entries:
        color = COLORS[entry["key"]]
        per_seed = [run["history"]["val_accuracy"] for run in entry["runs"]]
        epochs = entry["runs"][0]["history"]["epoch"]
        mean = [100 * statistics.mean(values) for values in zip(*per_seed)]
        ax_curve.plot(epochs, mean, "o-", color=color, label=entry["name"])
        if len(per_seed) > 1:  # the band: lowest to highest seed at each epoch
            ax_curve.fill_between(epochs, [100 * min(v) for v in zip(*per_seed)],
                                  [100 * max(v) for v in zip(*per_seed)], color=color, alpha=0.2)
        accuracies = [100 * a for a in entry["val_accuracy_per_seed"]]
        center = 100 * entry["val_accuracy"]
        ax_size.errorbar(entry["parameters"] / 1000, center, fmt="o", color=color, markersize=8, capsize=5,
                         yerr=[[center - min(accuracies)], [max(accuracies) - center]])
    ax_curve.set(title="Validation accuracy after each epoch", xlabel="epoch", ylabel="validation accuracy (%)")
    ax_curve.set_xticks(epochs)  # whole epochs only
    ax_curve.legend(loc="center right")
    ax_size.set(title="Validation accuracy vs size", xlabel="parameters (thousands)", ylabel="validation accuracy (%)")
    right = 1.6 * max(entry["parameters"] for entry in entries) / 1000
    ax_size.set_xlim(0, right)  # from 0: honest sizes, and room on the right for the labels
    # Label each point to its right. Networks of the same size (three have 101,770
    # parameters) would write over each other, so their labels are pushed apart.
    low, high = ax_size.get_ylim()
    gap, previous = 0.17 * (high - low), {}  # a two-line label is about this tall
    for entry in sorted(entries, key=lambda e: e["val_accuracy"]):
        x = entry["parameters"] / 1000
        y = max(100 * entry["val_accuracy"], previous.get(x, -math.inf) + gap)
        previous[x] = y
        ax_size.text(x + 0.03 * right, y, f"{entry['name']}\n{100 * entry['val_accuracy']:.2f}%",
                     color=COLORS[entry["key"]], fontsize=9, va="center")
        high = max(high, y + gap / 2)
    ax_size.set_ylim(low, high)

    names = [entry["name"] for entry in entries]
    seconds = [entry["train_seconds"] for entry in entries]
    bars = ax_time.barh(names, seconds, color=[COLORS[entry["key"]] for entry in entries])
    ax_time.bar_label(bars, labels=[f"{s:.1f} s" for s in seconds], padding=3)
    ax_time.invert_yaxis()  # first network on top, as in the table
    ax_time.set(title="Training time per run (train + validate)", xlabel="seconds")
    ax_time.set_xlim(0, 1.25 * max(seconds))
    for ax in (ax_curve, ax_size, ax_time):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 5. The final exam: the network validation ranked first meets the test set
# ---------------------------------------------------------------------------
# The test set stands in for new digits, so it plays no part in choosing. Choose on
# validation, then read the test set once, for the one choice: an honest score for new digits.
def final_exam(entries: list[dict], models: dict, data) -> dict:
    """Test each seed's model of the network ranked first on validation; the only test accuracy 05 reports."""
    best = max(entries, key=lambda entry: entry["val_accuracy"])
    loss_fn = nn.CrossEntropyLoss()
    accuracies = [dl_utils.evaluate(model, data.test_loader, loss_fn)["accuracy"] for model in models[best["key"]]]
    print(textwrap.fill(f"Ranked first on validation: {best['name']}. Only it is tested: scoring every network "
                        "and keeping the best would choose on the test set, and the score would flatter "
                        "(--leakage measures by how much).", 100))
    print(f"{best['name']} test accuracy: {100 * statistics.mean(accuracies):.2f}%"
          + (f" +- {100 * spread(accuracies):.2f} over {len(accuracies)} seeds" if len(accuracies) > 1 else ""))
    return {"name": best["name"], "test_accuracy": statistics.mean(accuracies),
            "test_accuracy_std": spread(accuracies), "test_accuracy_per_seed": accuracies}


# ---------------------------------------------------------------------------
# The flags: this lesson's settings, then each side experiment's own (extras/)
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__,
                                   choices={"ARCH": list(NETWORKS), "PIXELS": ("natural", "shuffled")})
    for extra in (lr_sweep, compare_runs, gradients, leakage):
        extra.add_flags(parser)  # its flags, in their own --help group
    return parser


def side_experiment(args) -> str | None:
    """The side experiment asked for instead of the comparison: one at most."""
    if args.where and not args.compare_runs:
        raise dl_utils.CourseError("--where only filters the runs of --compare-runs; add --compare-runs SETTING.")
    asked = [flag for flag, value in (("--lr-sweep", args.lr_sweep), ("--compare-runs", args.compare_runs),
                                      ("--gradients", args.gradients), ("--leakage", args.leakage)) if value]
    if len(asked) > 1:
        raise dl_utils.CourseError(f"{' and '.join(asked)} are different experiments: run them one at a time.")
    return asked[0] if asked else None


def seed_list(args, argv) -> list[int]:
    """The seeds every network is trained with: --seed, --seed + 1, ... (--seeds of them).

    --quick trains one seed, unless you typed --seeds yourself.
    """
    typed = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    typed.add_argument("--seeds")
    if args.quick and typed.parse_known_args(argv)[0].seeds is None:
        args.seeds = 1
    return [args.seed + i for i in range(args.seeds)]


def main(argv=None) -> dict:
    parser = build_parser()
    args = dl_utils.parse_args(parser, argv)
    args.arch = list(dict.fromkeys(args.arch))  # drop repeats, keep the order given
    side = side_experiment(args)  # None, or the one of --lr-sweep, --compare-runs, --gradients, --leakage asked for
    if side == "--compare-runs":
        return compare_runs.run(args)  # reads experiments.csv: trains nothing, needs no MNIST
    seeds = seed_list(args, argv)
    config = dl_utils.settings_from_args(args)  # every setting, recorded with the results
    start = time.perf_counter()

    dl_utils.step("1. Device and data")
    changed = dl_utils.changed_settings(parser, args)  # for the printout and the plot's title
    print(textwrap.fill("Settings: the defaults" + ("" if changed == "defaults" else f", except {changed}"), 100))
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    # One data set for every run: the same 55,000 / 5,000 split and the same
    # normalisation; only the seed changes the weights and the batch order.
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels)
    print(f"Data: {len(data.train_loader.dataset):,} training, {len(data.val_loader.dataset):,} validation, "
          f"{len(data.test_loader.dataset):,} test images")
    first = NETWORKS[args.arch[0]].__name__  # a side experiment trains one network: the first --arch
    if side == "--lr-sweep":
        return lr_sweep.run(args, data, device, train_once=train_once, name=first, seeds=seeds)
    if side == "--gradients":
        return gradients.run(args, data, device)
    if side == "--leakage":
        return leakage.run(args, data, device, train_once=train_once, name=first)

    dl_utils.step(f"2. Every network, every seed: {args.epochs} epoch{'s' if args.epochs > 1 else ''}, "
                  f"batch {args.batch_size}, Adam lr {args.lr:g}, seeds {seeds}")
    entries, models = train_every_network(args, data, device, seeds)  # judged on validation: the test set waits

    dl_utils.step("3. The table, and the hypothesis against the seed noise (validation accuracy)")
    comparisons = print_table_and_hypothesis(entries, seeds)

    dl_utils.step("4. The plot")
    n, n_epochs = len(seeds), len(entries[0]["history"]["epoch"])
    plot_path = plot_comparison(
        entries, args.out_dir / "architecture_comparison.png", show=args.show,
        title=f"Same data, same budget ({n_epochs} epoch{'s' if n_epochs > 1 else ''}, Adam lr {args.lr:g}, "
              f"batch {args.batch_size}), {n} seed{'s' if n > 1 else ''} each"
              + (": line = mean, band and bars = worst to best seed" if n > 1 else "")
              + f"\nsettings: {changed}")

    dl_utils.step("5. The final exam: the test set, read once")
    chosen = final_exam(entries, models, data)
    results = {"script": "05_experiment_architectures", "date": entries[0]["runs"][0]["date"],
               "device": dl_utils.device_name(device), "epochs": args.epochs, "batch_size": args.batch_size,
               "lr": args.lr, "seeds": seeds, "subset": args.subset, "config": config,
               "architectures": entries, "comparisons": comparisons, "chosen": chosen,
               "total_seconds": time.perf_counter() - start}
    dl_utils.save_results(args.out_dir, "05_experiment_architectures", results)
    print(f"Saved {plot_path.name}, 05_experiment_architectures.json and "
          f"{', '.join('05_' + e['name'] + '.pth' for e in entries)} in {args.out_dir} "
          f"({results['total_seconds']:.0f}s in all)\nNext, a network built for images: python 06_cnn_mnist.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
