"""05 - An honest experiment: which architecture is better, and how sure are we?

What you will learn
  * how to compare models fairly: same data split, same seeds, same number of
    epochs, same optimizer; change ONE thing (the architecture)
  * that a difference smaller than the seed-to-seed noise is no difference:
    run each model with several seeds and compare means with their spread
  * what depth (a second hidden layer), the activation function (ReLU vs
    Tanh) and no activation at all really change, measured
  * why a network without non-linearities is just one linear map, and what
    such a linear classifier still reaches on MNIST (about 92%, not "nothing")
  * what an ensemble of the seeds' models gains (their softmax outputs averaged)
  * (with --lr-sweep) how to choose a learning rate on validation data and test
    only the choice; (with --compare-runs) how to read your experiment log
  * break it on purpose: (with --gradients) vanishing and exploding gradients
    in a 15-layer network and the fixes; (with --leakage) how much choosing
    on the test set flatters the number you report

Run first: 03_train_mnist.py (the two-layer network here is 03's SimpleNN).

Run it
    python 05_experiment_architectures.py                   # 4 networks x 3 seeds x 5 epochs
    python 05_experiment_architectures.py --quick           # 1 epoch on 5,000 images, 1 seed: seconds
    python 05_experiment_architectures.py --arch two-layer tanh --seeds 5   # two networks, 5 seeds
    python 05_experiment_architectures.py --lr-sweep 0.0001,0.001,0.01,0.1  # learning rates, one network
    python 05_experiment_architectures.py --gradients                       # 6 deep MLPs, 400 SGD steps each
    python 05_experiment_architectures.py --leakage 20 --subset 5000 --epochs 2   # pick by test vs by validation
    python 05_experiment_architectures.py --compare-runs hidden             # rank the runs in outputs/experiments.csv
    python 05_experiment_architectures.py --compare-runs lr --where optimizer=adam   # only the Adam runs
    python 05_experiment_architectures.py --data-dir DATA_DIR    # MNIST kept in DATA_DIR/MNIST/raw/

Writes (in outputs/, or --out-dir)
    architecture_comparison.png   validation accuracy per epoch, test accuracy vs parameters, seconds
    05_<Name>.pth                 each network's checkpoint, from the run with the first seed
    05_experiment_architectures.json   the measurements: "architectures" is a list with, per network,
                                  name, parameters, test_accuracy (mean over seeds), its spread,
                                  ensemble_test_accuracy, train_seconds, history and one
                                  dl_utils.summarize_run per seed
    experiments.csv               one row per training run (network x seed)
    lr_sweep.png, lr_sweep.json   with --lr-sweep only (instead of the comparison): chosen_lr, by validation
    gradient_norms.png, gradients.json   with --gradients only
    leakage.png, leakage.json     with --leakage only
    runs_by_<setting>.png, compare_runs.json   with --compare-runs only (it trains nothing)

How long: on the course's 2-core CPU one run (5 epochs) takes about 8 s, about 13 s for
ThreeLayerNN, so the default 12 runs take about 2 minutes for the whole script; --quick and
--compare-runs: a few seconds; --gradients and --leakage 20 --subset 5000 --epochs 2: about
half a minute each (measured while the machine was busy; README.md "Results" and
docs/results/ have the figures). The seconds in the table are those of YOUR run: a busy CPU
inflates them.
"""

import argparse
import math
import statistics
import time

import torch
from torch import nn

import dl_utils

# ---------------------------------------------------------------------------
# Settings: the same for every network (each has a flag; see --help)
# ---------------------------------------------------------------------------
EPOCHS = 5  # per network and seed; all of them are close to their best after 5 (see the plot)
BATCH_SIZE = 64  # smaller than 03's 128: these comparisons were all measured with it (LEARNING_GUIDE 05)
LEARNING_RATE = 1e-3  # Adam, as in 03, for every network: the same budget for all
SEEDS = 3  # runs per network, seeds SEED, SEED+1, ...; 3 is the fewest that show a spread
SEED = 0
ARCHS = ["two-layer", "three-layer", "tanh", "no-activation"]  # all four; --arch picks some
LR_SWEEP = None  # e.g. [1e-4, 1e-3, 1e-2, 1e-1]: train the first --arch at each learning rate instead
TOP_RUNS = 10  # --compare-runs prints this many of the best runs: enough to see a pattern, fits a screen
# --gradients: deep MLPs, briefly trained, to watch gradients vanish or explode
GRADIENT_DEPTH = 15  # Linear layers: a factor of 0.5 per layer is 0.5**14 = 0.00006 after 15 of them
GRADIENT_WIDTH = 64  # neurons per hidden layer: small, so 6 networks x 400 steps take seconds
GRADIENT_STEPS = 400  # SGD steps per network: enough to separate "learns" from "stuck at 2.30"
GRADIENT_LR = 0.02  # SGD, momentum 0.9 (not Adam: it rescales each step by the gradient's size and hides
#                     the problem); measured: at 0.05 even the Kaiming network diverged within 300 steps
GRADIENT_BATCH = 256  # the fixed batch on which every layer's gradient norm is measured
# (activation, init, batch norm): the three problems, then the three fixes
GRADIENT_CONFIGS = [("sigmoid", "default", False), ("tanh", "default", False), ("relu", "default", False),
                    ("relu", "large", False), ("relu", "kaiming", False), ("sigmoid", "default", True)]
LEAKAGE_RUNS = None  # e.g. 20: train that many seeds and compare choosing by test vs by validation
LEAKAGE_SPLITS = 1000  # random halvings of the test set: the optimism's mean is then known to ~1/30 of its spread


# ---------------------------------------------------------------------------
# 1. The four networks
# ---------------------------------------------------------------------------
# Each flattens the 28 x 28 image into 784 numbers and ends with 10 scores
# (logits), one per digit. They differ in what happens in between.
class TwoLayerNN(dl_utils.import_script("03_train_mnist").SimpleNN):
    """784 -> 128 -> ReLU -> 10: 03's SimpleNN itself (imported, not copied), the baseline.

    101,770 parameters: (784 * 128 + 128) + (128 * 10 + 10). A subclass only
    to give it this lesson's name; its layers and forward() are 03's.
    """

    def __init__(self):
        super().__init__(hidden=128)


class ThreeLayerNN(nn.Module):
    """784 -> 256 -> ReLU -> 128 -> ReLU -> 10: deeper and wider. 235,146 parameters."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 256)  # 200,960
        self.fc2 = nn.Linear(256, 128)  # 32,896
        self.fc3 = nn.Linear(128, 10)  # 1,290
        self.act = nn.ReLU()  # no weights: one module can be used twice

    def forward(self, x):
        x = self.act(self.fc1(self.flatten(x)))
        x = self.act(self.fc2(x))
        return self.fc3(x)


class TanhNN(nn.Module):
    """TwoLayerNN with Tanh instead of ReLU. Same 101,770 parameters.

    Tanh squashes into (-1, 1) and its slope vanishes for large inputs, so
    gradients through saturated neurons are small; ReLU's slope is 1 for
    every positive input. That is the usual argument for ReLU; on a network
    this shallow the measured difference is small (see the results).
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
            linear.weight.copy_(self.fc2.weight @ self.fc1.weight)  # W = W2 W1
            linear.bias.copy_(self.fc2.weight @ self.fc1.bias + self.fc2.bias)  # b = W2 b1 + b2
        return nn.Sequential(nn.Flatten(), linear)


# --arch name -> class. The order here is the order of the table and plot.
NETWORKS = {"two-layer": TwoLayerNN, "three-layer": ThreeLayerNN, "tanh": TanhNN, "no-activation": NoActivationNN}
COLORS = {"two-layer": "tab:blue", "three-layer": "tab:purple", "tanh": "tab:orange", "no-activation": "tab:gray"}


def lr_list(text: str) -> list[float]:
    """argparse type: comma-separated positive learning rates, e.g. 0.0001,0.001,0.01."""
    values = [dl_utils.positive_float(part) for part in text.split(",") if part.strip()]
    if len(values) < 2:
        raise argparse.ArgumentTypeError(f"give at least two learning rates separated by commas, got {text!r}")
    return sorted(set(values))


def setting_value(text: str) -> tuple[str, str]:
    """argparse type: "optimizer=adam" -> ("optimizer", "adam")."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"write SETTING=VALUE, e.g. optimizer=adam, got {text!r}")
    return name.strip(), value.strip()


def depth_type(text: str) -> int:
    """argparse type: the number of Linear layers of --gradients' deep MLP, at least 2."""
    value = dl_utils.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a deep MLP needs at least 2 Linear layers (one hidden layer), got {value}")
    return value


def runs_type(text: str) -> int:
    """argparse type: --leakage's number of runs, at least 2 (one run leaves nothing to choose)."""
    value = dl_utils.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"choosing the best needs at least 2 runs, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compare four network architectures on MNIST, with seed noise.")
    dl_utils.add_common_args(parser, seed=SEED, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE)
    parser.add_argument("--arch", nargs="+", choices=list(NETWORKS), default=ARCHS,
                        help="which networks to train (default: all four)")
    parser.add_argument("--seeds", type=dl_utils.positive_int, default=None,
                        help=f"runs per network, with seeds --seed, --seed+1, ... (default: {SEEDS}; 1 with --quick)")
    parser.add_argument("--lr-sweep", type=lr_list, default=LR_SWEEP, metavar="LR,LR,...",
                        help="instead of comparing networks, train the first --arch at each of these "
                             "learning rates, e.g. 0.0001,0.001,0.01,0.1")
    parser.add_argument("--compare-runs", metavar="SETTING", default=None,
                        help="train nothing: read <out-dir>/experiments.csv, print the best runs and plot "
                             "accuracy against this setting (a column of the log, e.g. lr, hidden, optimizer)")
    parser.add_argument("--where", nargs="+", type=setting_value, default=[], metavar="SETTING=VALUE",
                        help="with --compare-runs: keep only the runs with these settings, e.g. optimizer=adam "
                             "dropout=0 (default: all runs)")
    parser.add_argument("--top", type=dl_utils.positive_int, default=TOP_RUNS,
                        help="with --compare-runs: how many of the best runs to list (default: %(default)s)")
    parser.add_argument("--gradients", action="store_true",
                        help="instead of comparing networks: build deep MLPs (sigmoid, tanh, ReLU; default, "
                             "Kaiming and too-large init; batch norm), plot every layer's gradient norm and the "
                             "training curves (gradient_norms.png)")
    parser.add_argument("--depth", type=depth_type, default=GRADIENT_DEPTH,
                        help="with --gradients: Linear layers in the deep MLP, at least 2 (default: %(default)s)")
    parser.add_argument("--width", type=dl_utils.positive_int, default=GRADIENT_WIDTH,
                        help="with --gradients: neurons per hidden layer (default: %(default)s)")
    parser.add_argument("--steps", type=dl_utils.positive_int, default=GRADIENT_STEPS,
                        help="with --gradients: SGD steps per network (default: %(default)s)")
    parser.add_argument("--gradient-lr", type=dl_utils.positive_float, default=GRADIENT_LR,
                        help="with --gradients: SGD's learning rate (default: %(default)s)")
    parser.add_argument("--leakage", type=runs_type, default=LEAKAGE_RUNS, metavar="RUNS",
                        help="instead of comparing networks: train the first --arch with RUNS seeds, pick the "
                             "best by test and by validation accuracy, and measure how much each choice's "
                             "score flatters on half of the test set it was not picked on (leakage.png)")
    return parser


# ---------------------------------------------------------------------------
# 2. One training run: the same recipe for every network
# ---------------------------------------------------------------------------
def train_once(arch: str, *, seed: int, lr: float, data, args, device) -> tuple[nn.Module, dict]:
    """Train network `arch` with `seed`; returns (model, dl_utils.summarize_run results)."""
    dl_utils.set_seed(seed)  # the same seed -> the same initial weights ...
    data.train_loader.generator.manual_seed(seed)  # ... and the same batch order, for every network
    model = NETWORKS[arch]().to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = dl_utils.train_model(model, data.train_loader, data.val_loader, loss_fn=loss_fn,
                                   optimizer=optimizer, epochs=args.epochs, device=device, log=None)
    test = dl_utils.evaluate_model(model, data.test_loader, loss_fn=loss_fn, device=device)
    hyperparameters = {"arch": arch, "epochs": args.epochs, "batch_size": args.batch_size, "lr": lr,
                       "optimizer": "adam", "seed": seed, "subset": args.subset}
    results = dl_utils.summarize_run(script="05_experiment_architectures", hyperparameters=hyperparameters,
                                     history=history, test_metrics=test,
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


# ---------------------------------------------------------------------------
# 3. Is a difference real? Compare it with the seed noise
# ---------------------------------------------------------------------------
# Each seed gives other initial weights and another batch order, and so a
# slightly different test accuracy. The mean of n seeds wobbles by about
# std / sqrt(n) (its "standard error"). The course calls the standard error
# of a gap, sqrt(se_a^2 + se_b^2), its "noise", everywhere. A rough rule:
# call the gap between two means real only when it is more than twice its noise. Within that, the ranking could flip with other
# seeds. It is a rule of thumb, not a proof: 3 seeds estimate the spread
# itself only roughly, and every run here shares one train/validation split.
def compare(a: dict, b: dict) -> dict:
    """Is `a` better than `b`? Returns the gap (in accuracy points), its noise and a verdict."""
    gap = a["test_accuracy"] - b["test_accuracy"]
    n_a, n_b = len(a["test_accuracy_per_seed"]), len(b["test_accuracy_per_seed"])
    noise = math.sqrt(a["test_accuracy_std"] ** 2 / n_a + b["test_accuracy_std"] ** 2 / n_b)
    if min(n_a, n_b) < 2:
        verdict = "cannot tell: one seed shows no noise (run with --seeds 3 or more)"
    elif abs(gap) > 2 * noise:
        verdict = f"{a['name'] if gap > 0 else b['name']} is better, beyond seed noise"
    else:
        verdict = "within seed noise: no measured difference"
    return {"a": a["name"], "b": b["name"], "gap": gap, "noise": noise, "verdict": verdict}


# The course's hypothesis, as (better, worse) pairs of --arch names.
HYPOTHESIS = [("three-layer", "two-layer"), ("two-layer", "tanh"), ("two-layer", "no-activation")]


def plot_comparison(entries: list[dict], path, *, title: str, show: bool):
    """architecture_comparison.png: learning curves, accuracy vs size, time."""
    import matplotlib.pyplot as plt

    fig, (ax_curve, ax_size, ax_time) = plt.subplots(1, 3, figsize=(16, 5.2))
    for entry in entries:
        color = COLORS[entry["key"]]
        per_seed = [run["history"]["val_accuracy"] for run in entry["runs"]]
        epochs = entry["runs"][0]["history"]["epoch"]
        mean = [100 * statistics.mean(values) for values in zip(*per_seed)]
        ax_curve.plot(epochs, mean, "o-", color=color, label=entry["name"])
        if len(per_seed) > 1:  # the band: lowest to highest seed at each epoch
            ax_curve.fill_between(epochs, [100 * min(v) for v in zip(*per_seed)],
                                  [100 * max(v) for v in zip(*per_seed)], color=color, alpha=0.2)
        accuracies = [100 * a for a in entry["test_accuracy_per_seed"]]
        center = 100 * entry["test_accuracy"]
        ax_size.errorbar(entry["parameters"] / 1000, center, fmt="o", color=color, markersize=8, capsize=5,
                         yerr=[[center - min(accuracies)], [max(accuracies) - center]])
    ax_curve.set(title="Validation accuracy after each epoch", xlabel="epoch", ylabel="validation accuracy (%)")
    ax_curve.set_xticks(epochs)  # whole epochs only
    ax_curve.legend(loc="center right")
    ax_size.set(title="Test accuracy vs size", xlabel="parameters (thousands)", ylabel="test accuracy (%)")
    right = 1.6 * max(entry["parameters"] for entry in entries) / 1000
    ax_size.set_xlim(0, right)  # from 0: honest sizes, and room on the right for the labels
    # Label each point to its right. Networks of the same size (three have 101,770
    # parameters) would write over each other, so their labels are pushed apart.
    low, high = ax_size.get_ylim()
    gap, previous = 0.17 * (high - low), {}  # a two-line label is about this tall
    for entry in sorted(entries, key=lambda e: e["test_accuracy"]):
        x = entry["parameters"] / 1000
        y = max(100 * entry["test_accuracy"], previous.get(x, -math.inf) + gap)
        previous[x] = y
        ax_size.text(x + 0.03 * right, y, f"{entry['name']}\n{100 * entry['test_accuracy']:.2f}%",
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


def run_lr_sweep(args, data, device) -> dict:
    """Train one network at each learning rate (all seeds), choose by validation, test the choice once."""
    import matplotlib.pyplot as plt

    arch = args.arch[0]
    print(f"\nLearning-rate sweep: {NETWORKS[arch].__name__}, {args.epochs} epochs, seeds {args.seed_list}")
    print("Each learning rate is judged by its validation accuracy (the last epoch's, mean over seeds).")
    rows = []
    for lr in args.lr_sweep:
        val, test = [], []
        for seed in args.seed_list:
            try:
                _, results = train_once(arch, seed=seed, lr=lr, data=data, args=args, device=device)
                val.append(results["final_val_accuracy"])
                test.append(results["test_accuracy"])
            except dl_utils.CourseError:  # the loss became NaN: a result too ("diverged")
                val.append(float("nan"))
                test.append(float("nan"))
        row = {"lr": lr, "val_accuracy": mean_or_none(val), "val_accuracy_per_seed": val,
               "test_accuracy": mean_or_none(test), "test_accuracy_per_seed": test,
               "diverged_runs": sum(not math.isfinite(v) for v in val)}
        rows.append(row)
        shown = f"{100 * row['val_accuracy']:.2f}%" if row["val_accuracy"] is not None else "diverged"
        finite = [v for v in val if math.isfinite(v)]
        print(f"  lr {lr:<8g} validation accuracy {shown}"
              + (f" (range {100 * min(finite):.2f}-{100 * max(finite):.2f})" if len(finite) > 1 else "")
              + (f", {row['diverged_runs']} of {len(val)} runs diverged" if row["diverged_runs"] else ""))
    chosen = choose_by_validation(rows)
    # The test set is read for the chosen learning rate only, once, to report it.
    # (The JSON keeps every row's test accuracy too, for 05 --leakage-style
    # questions; the choice above never looked at it.)
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
           title=f"{NETWORKS[arch].__name__}, Adam, {args.epochs} epochs, {len(args.seed_list)} seeds: "
                 "choose on validation, test once")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    path = dl_utils.finish_figure(fig, args.out_dir / "lr_sweep.png", show=args.show)
    results = {"script": "05_experiment_architectures", "mode": "lr_sweep", "arch": NETWORKS[arch].__name__,
               "epochs": args.epochs, "seeds": args.seed_list, "subset": args.subset,
               "device": dl_utils.device_name(device), "chosen_by": "val_accuracy", "chosen_lr": chosen["lr"],
               "chosen_val_accuracy": chosen["val_accuracy"], "chosen_test_accuracy": chosen["test_accuracy"],
               "lr_sweep": rows}
    dl_utils.save_results(args.out_dir, "lr_sweep", results)
    print(f"Saved {path.name} and lr_sweep.json in {args.out_dir}")
    return results


# ---------------------------------------------------------------------------
# 4. Reading your experiment log (--compare-runs)
# ---------------------------------------------------------------------------
# Every training run of 03, 05 and 06 added a row to experiments.csv. After
# an afternoon of "change one thing, rerun", this answers the two questions
# that matter: which runs were best, and how did the setting I varied move
# the accuracy? The ranking uses VALIDATION accuracy: choosing by test
# accuracy would tune on the test set (see "Train, Validation & Test Sets").
def compare_runs(args) -> dict:
    """Print the best runs in experiments.csv and plot accuracy against args.compare_runs."""
    setting = args.compare_runs
    log_path = args.out_dir / "experiments.csv"
    all_runs = dl_utils.read_experiments(log_path)
    runs = dl_utils.filter_runs(all_runs, dict(args.where))
    where_text = " ".join(f"{key}={value}" for key, value in args.where)
    if not runs:
        raise dl_utils.CourseError(f"None of the {len(all_runs)} runs in {log_path} has {where_text}. "
                                   "Check the spelling of the values against the file (e.g. lr=0.001, "
                                   "batch_norm=True), or drop --where.")
    by_value = dl_utils.accuracy_by_value(runs, setting)
    if not by_value:
        settings = [c for c in dict.fromkeys(c for run in runs for c in run) if c not in dl_utils.RESULT_COLUMNS]
        raise dl_utils.CourseError(f"--compare-runs {setting}: none of these runs has a setting called {setting!r}. "
                                   f"Their settings are: {', '.join(settings)}.")
    print(f"{len(runs)} runs in {log_path}" + (f" with {where_text}" if where_text else "")
          + f" (of {len(all_runs)})")

    # The best runs. Only the settings that differ between them get a
    # column; the ones they share are printed once, below the table.
    best = dl_utils.best_runs(runs, k=args.top)
    shown, shared = dl_utils.varying_settings(best)
    if setting in shown:  # the setting you asked about comes first
        shown = [setting] + [key for key in shown if key != setting]
    print(f"\nThe {len(best)} best by validation accuracy (the test column is for reporting, not for choosing):")
    print(dl_utils.format_runs_table(best, shown))
    shared = {key: value for key, value in shared.items() if value is not None}
    if shared:
        print("Same in all of these: " + ", ".join(f"{key}={value}" for key, value in shared.items()))

    # Accuracy against the chosen setting: the best and the mean run at each value.
    print(f"\nValidation accuracy by {setting} (best run, mean of the runs; other settings may differ too):")
    for row in by_value:
        print(f"  {setting}={row['value']!s:<10} best {100 * row['best_val_accuracy']:6.2f}%   "
              f"mean {100 * row['mean_best_val_accuracy']:6.2f}%   {row['runs']} run{'s' if row['runs'] > 1 else ''}")
    plotted = [run for run in runs if run.get(setting) is not None]
    if len(plotted) < len(runs):
        print(f"  ({len(runs) - len(plotted)} runs have no {setting}: not plotted)")
    # A difference is the setting's doing only if nothing else changed (the seed aside).
    varying, _ = dl_utils.varying_settings(runs)
    others = [key for key in varying if key not in (setting, "seed")]
    if others:
        print(f"Careful: {', '.join(others)} also changed between these runs, so not every difference above "
              f"is {setting}'s doing. Hold them fixed with --where, e.g. --where {others[0]}={runs[0].get(others[0])}")

    plot_path = dl_utils.plot_runs_against(
        plotted, setting, args.out_dir / f"runs_by_{setting}.png", show=args.show,
        title=f"{len(plotted)} runs from experiments.csv" + (f" ({where_text})" if where_text else "")
              + f": accuracy against {setting}")
    results = {"script": "05_experiment_architectures", "mode": "compare_runs", "setting": setting,
               "where": dict(args.where), "runs": len(runs), "runs_in_log": len(all_runs),
               "varying": varying, "best": best, "by_value": by_value}
    dl_utils.save_results(args.out_dir, "compare_runs", results)
    print(f"\nSaved {plot_path.name} and compare_runs.json in {args.out_dir}")
    return results


# ---------------------------------------------------------------------------
# 5. Vanishing and exploding gradients (--gradients)
# ---------------------------------------------------------------------------
# Backpropagation multiplies, layer after layer, by each layer's weights and
# by the slope of its activation (see "Vanishing & Exploding Gradients").
# If that factor is a bit below 1, the gradient reaching the first layers
# shrinks geometrically with depth (vanishing: those layers barely learn);
# a bit above 1, it grows geometrically (exploding: steps overshoot, NaN).
# Sigmoid's slope is at most 0.25; PyTorch's default init (uniform with
# std 1/sqrt(3 fan_in)) halves a ReLU layer's output variance about three
# times over (x 1/6 per layer). The fixes measured here: Kaiming's init
# (std sqrt(2 / fan_in), which keeps a ReLU layer's variance at 1) and
# batch norm (which re-scales every layer's output to std 1 on each batch).
ACTIVATION_LAYERS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


class DeepMLP(nn.Module):
    """`depth` Linear layers, 784 -> width -> ... -> width -> 10, an activation (and batch norm) between them."""

    def __init__(self, depth: int, width: int, activation: str, batch_norm: bool = False):
        super().__init__()
        sizes = [28 * 28] + [width] * (depth - 1) + [10]  # depth Linear layers need depth + 1 sizes
        layers = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < depth - 1:  # nothing after the last layer: it gives the 10 logits
                if batch_norm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(ACTIVATION_LAYERS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)

    def linears(self) -> list[nn.Linear]:
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]


def initialise(model: DeepMLP, how: str) -> None:
    """"default": leave PyTorch's init; "kaiming": normal with std sqrt(2 / fan_in), biases 0;
    "large": 1.5 x Kaiming's std, so each ReLU layer multiplies the variance by 1.5^2 = 2.25."""
    if how == "default":
        return
    scale = {"kaiming": 1.0, "large": 1.5}[how]
    for layer in model.linears():
        nn.init.normal_(layer.weight, mean=0.0, std=scale * math.sqrt(2.0 / layer.in_features))
        nn.init.zeros_(layer.bias)


def layer_gradient_norms(model: DeepMLP, images, labels, loss_fn) -> list[float]:
    """The gradient's size (L2 norm) for every Linear layer's weights, first layer first, on one batch."""
    model.zero_grad()
    loss_fn(model(images), labels).backward()
    return [layer.weight.grad.norm().item() for layer in model.linears()]


def gradient_experiment(config: tuple, *, args, data, device, batch) -> dict:
    """Build one deep MLP, measure its per-layer gradients, train it GRADIENT_STEPS steps, measure again."""
    activation, init, batch_norm = config
    name = f"{activation}, {init} init" + (", batch norm" if batch_norm else "")
    dl_utils.set_seed(args.seed)
    data.train_loader.generator.manual_seed(args.seed)  # the same batches for every network
    model = DeepMLP(args.depth, args.width, activation, batch_norm).to(device)
    initialise(model, init)
    loss_fn = nn.CrossEntropyLoss()
    # Plain SGD on purpose: Adam divides every step by the gradient's own size,
    # which hides (part of) a vanishing gradient; SGD shows it as it is.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.gradient_lr, momentum=0.9)
    model.train()
    at_init = layer_gradient_norms(model, *batch, loss_fn)
    losses, diverged_at, step = [], None, 0
    while step < args.steps and diverged_at is None:
        for images, labels in data.train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            if not torch.isfinite(loss):  # exploded: every later step would be NaN too
                diverged_at = step
                break
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step == args.steps:
                break
    after = layer_gradient_norms(model, *batch, loss_fn) if diverged_at is None else None
    val = dl_utils.evaluate_model(model, data.val_loader, device=device)["accuracy"] if diverged_at is None else None
    return {"name": name, "activation": activation, "init": init, "batch_norm": batch_norm,
            "grad_norm_at_init": at_init, "grad_norm_after": after,
            "first_over_last_at_init": at_init[0] / at_init[-1],
            # log10(last / first): how many factors of 10 the gradient lost on its way down to layer 1
            "decades_lost_at_init": math.log10(at_init[-1] / at_init[0]), "train_loss": losses,
            "diverged_at_step": diverged_at, "val_accuracy": val}


def plot_gradients(entries: list[dict], path, *, args, show: bool):
    """gradient_norms.png: per-layer gradient norms at init and after training, and the loss curves."""
    import matplotlib.pyplot as plt

    fig, (ax_init, ax_after, ax_loss) = plt.subplots(1, 3, figsize=(17, 5.4))
    layers = list(range(1, args.depth + 1))
    window = 20  # steps per point of the loss curve: one batch's loss is noisy
    for i, entry in enumerate(entries):
        style = dict(color=f"C{i}", linestyle="--" if entry["batch_norm"] else "-", marker="o", markersize=3,
                     label=entry["name"])
        ax_init.plot(layers, entry["grad_norm_at_init"], **style)
        if entry["grad_norm_after"] is not None:
            ax_after.plot(layers, entry["grad_norm_after"], **style)
        losses = entry["train_loss"]
        smooth = [statistics.mean(losses[j:j + window]) for j in range(0, len(losses) - window + 1, window)]
        ax_loss.plot([window * (j + 1) for j in range(len(smooth))], smooth, **{**style, "marker": None})
        if entry["diverged_at_step"] is not None:
            ax_loss.plot([max(entry["diverged_at_step"], 1)], [math.log(10)], "x", color=f"C{i}", markersize=12)
    for ax, when in ((ax_init, "at initialisation"), (ax_after, f"after {args.steps} SGD steps")):
        ax.set_yscale("log")  # the norms differ by factors of thousands
        ax.set(title=f"Gradient norm per layer, {when}", xlabel="layer (1 = next to the input)",
               ylabel="||d loss / d weights|| (log scale)")
    ax_loss.axhline(math.log(10), color="grey", linestyle=":", label="ln 10 = 2.30: guessing")
    ax_loss.set(title=f"Training loss (mean of {window} steps; x: diverged)", xlabel="step",
                ylabel="cross-entropy loss", ylim=(0, 2.6))
    for ax in (ax_init, ax_after, ax_loss):
        ax.grid(alpha=0.3, which="both")
    ax_loss.legend(fontsize=8)
    fig.suptitle(f"{args.depth}-layer MLP (width {args.width}), SGD lr {args.gradient_lr:g} momentum 0.9, batch "
                 f"{args.batch_size}: flat lines = healthy gradients, sloped = vanishing or exploding")
    return dl_utils.finish_figure(fig, path, show=show)


def run_gradients(args, data, device) -> dict:
    """Train every GRADIENT_CONFIGS network briefly; print and plot its per-layer gradient norms."""
    print(f"\nVanishing and exploding gradients: {args.depth} Linear layers of width {args.width}, "
          f"{args.steps} SGD steps (lr {args.gradient_lr:g}, momentum 0.9) each")
    batch = (data.train_loader.images[:GRADIENT_BATCH], data.train_loader.labels[:GRADIENT_BATCH])  # fixed batch
    entries = []
    print(f"{'network':34s} {'gradient norm: layer 1':>22s} {'layer ' + str(args.depth):>9s}   validation accuracy")
    for config in GRADIENT_CONFIGS:
        entry = gradient_experiment(config, args=args, data=data, device=device, batch=batch)
        entries.append(entry)
        outcome = (f"diverged (NaN) at step {entry['diverged_at_step']}" if entry["diverged_at_step"] is not None
                   else f"{100 * entry['val_accuracy']:.2f}%")
        norms = entry["grad_norm_at_init"]
        print(f"{entry['name']:34s} {norms[0]:22.2g} {norms[-1]:9.2g}   {outcome}")
    kaiming = [e for e in entries if (e["activation"], e["init"], e["batch_norm"]) == ("relu", "kaiming", False)]
    for entry in entries:  # layer 1's gradient against the healthy network's: far above 1 = exploding
        entry["layer1_vs_kaiming"] = entry["grad_norm_at_init"][0] / kaiming[0]["grad_norm_at_init"][0] if kaiming else None
    print(f"(gradient norms at initialisation. Layer 1 far below layer {args.depth}: the first layers get almost "
          "no gradient, vanishing. Every layer far above the Kaiming network's: exploding. "
          f"Validation accuracy after {args.steps} steps; chance is 10%)")
    path = plot_gradients(entries, args.out_dir / "gradient_norms.png", args=args, show=args.show)
    results = {"script": "05_experiment_architectures", "mode": "gradients", "depth": args.depth,
               "width": args.width, "steps": args.steps, "lr": args.gradient_lr, "batch_size": args.batch_size,
               "subset": args.subset, "seed": args.seed, "device": dl_utils.device_name(device),
               "networks": entries}
    dl_utils.save_results(args.out_dir, "gradients", results)
    print(f"Saved {path.name} and gradients.json in {args.out_dir}")
    return results


# ---------------------------------------------------------------------------
# 6. Data leakage, measured (--leakage N)
# ---------------------------------------------------------------------------
# Train N runs that differ only by their seed, then "choose the best" twice:
# by test accuracy (the leak) and by validation accuracy (the rule). To see
# what the choice does to the reported number, the test set is cut in two
# halves: A, the half you look at when choosing, and B, which plays the new
# digits nobody has seen. A winner picked on A looks better on A than it is:
# part of its lead is luck on those particular 5,000 images, and that luck
# does not come along to B. The validation-picked winner was chosen without
# looking at A or B, so A and B agree on it, on average. One halving is one
# coin toss; LEAKAGE_SPLITS random halvings give the average and its spread.
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
    return {"splits": splits, "picked_by_test_gap_mean": statistics.mean(test_gap),
            "picked_by_test_gap_std": spread(test_gap), "picked_by_val_gap_mean": statistics.mean(val_gap),
            "picked_by_val_gap_std": spread(val_gap), "picked_by_test_gaps": test_gap, "picked_by_val_gaps": val_gap}


def run_leakage(args, data, device) -> dict:
    """Train --leakage runs; compare choosing the best by test accuracy with choosing it by validation."""
    import matplotlib.pyplot as plt

    arch, n_runs = args.arch[0], args.leakage
    seeds = [args.seed + i for i in range(n_runs)]
    print(f"\nData leakage: {n_runs} runs of {NETWORKS[arch].__name__} that differ only by their seed "
          f"({args.epochs} epochs, lr {args.lr:g})")
    correct, val = [], []
    for seed in seeds:
        model, results = train_once(arch, seed=seed, lr=args.lr, data=data, args=args, device=device)
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

    fig, (ax_runs, ax_gap) = plt.subplots(1, 2, figsize=(13, 5))
    ax_runs.plot(100 * on_a, 100 * on_b, "o", color="tab:gray", alpha=0.6, label=f"the {n_runs} runs")
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
               title=f"{LEAKAGE_SPLITS} random halvings: how much the reported score flatters")
    for ax in (ax_runs, ax_gap):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Choosing the best of {n_runs} seeds of {NETWORKS[arch].__name__} ({args.epochs} epochs"
                 + (f", {args.subset:,} training images" if args.subset else "") + ") by test vs by validation")
    path = dl_utils.finish_figure(fig, args.out_dir / "leakage.png", show=args.show)
    results = {"script": "05_experiment_architectures", "mode": "leakage", "arch": NETWORKS[arch].__name__,
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


def train_every_network(args, data, device) -> list[dict]:
    """Section 7: every --arch with every seed; one entry per network, with its seeds and their ensemble."""
    print(f"Every network: {args.epochs} epoch{'s' if args.epochs > 1 else ''}, batch {args.batch_size}, Adam lr {args.lr:g}, "
          f"seeds {args.seed_list}\n")
    entries = []
    for arch in args.arch:
        name = NETWORKS[arch].__name__
        runs, test_probabilities = [], []
        for seed in args.seed_list:
            model, results = train_once(arch, seed=seed, lr=args.lr, data=data, args=args, device=device)
            runs.append(results)
            probabilities, test_labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
            test_probabilities.append(probabilities)  # (10,000, 10): kept for the ensemble below
            print(f"{name:15s} seed {seed}: test accuracy {100 * results['test_accuracy']:.2f}% "
                  f"in {results['train_seconds']:.1f}s")
            if seed == args.seed_list[0]:  # keep the first seed's model, as 03 keeps its one model
                dl_utils.save_checkpoint(
                    args.out_dir / f"05_{name}.pth", model=model, arch=name, model_config={},
                    hyperparameters=results["hyperparameters"],
                    metrics={k: results[k] for k in ("test_accuracy", "best_val_accuracy", "train_seconds")},
                    normalization=data.normalization)
                first_model = model
        accuracies = [run["test_accuracy"] for run in runs]
        entries.append({
            "name": name, "key": arch, "parameters": runs[0]["parameters"],
            "test_accuracy": statistics.mean(accuracies),  # mean over seeds
            "test_accuracy_std": spread(accuracies),
            "test_accuracy_per_seed": accuracies,
            # The seeds' averaged softmax, scored once on the test set (None with one seed).
            "ensemble_test_accuracy": ensemble_accuracy(test_probabilities, test_labels) if len(runs) > 1 else None,
            "train_seconds": statistics.mean(run["train_seconds"] for run in runs),  # per run
            "history": runs[0]["history"],  # the first seed's; every seed's is in "runs"
            "runs": runs,
        })
        if arch == "no-activation":
            # Check the algebra on real digits: the collapsed Linear(784, 10) gives the same logits.
            images = data.test_loader.images[:1000]
            with torch.no_grad():
                difference = (first_model(images) - first_model.collapsed()(images)).abs().max().item()
            print(f"{name} is one Linear(784, 10) in disguise: W2 @ W1 and W2 @ b1 + b2 give the same "
                  f"logits (largest difference on 1,000 test images: {difference:.1e}) with 7,850 numbers "
                  f"instead of {entries[-1]['parameters']:,}.")
        print()

    return entries


def print_table_and_hypothesis(entries: list[dict], args) -> list[dict]:
    """Section 8: the table of every network, then the course's hypothesis tested against the seed noise."""
    n = len(args.seed_list)
    several = n > 1
    print(f"{'network':15s} {'parameters':>10s}  {'test accuracy':>13s}"
          + ("   +- std   worst - best   ensemble" if several else "") + "   seconds/run")
    for e in entries:
        low, high = 100 * min(e["test_accuracy_per_seed"]), 100 * max(e["test_accuracy_per_seed"])
        print(f"{e['name']:15s} {e['parameters']:>10,}  {100 * e['test_accuracy']:12.2f}%"
              + (f"   +- {100 * e['test_accuracy_std']:.2f}   {low:5.2f} - {high:5.2f}"
                 f"   {100 * e['ensemble_test_accuracy']:7.2f}%" if several else "")
              + f"   {e['train_seconds']:11.1f}")
    print(f"(test accuracy: the mean of {n} seeds; +- std: how much it moves from seed to seed; ensemble: the {n} "
          "seeds' softmax outputs averaged, one prediction; seconds: per run, train + validation)"
          if several else "(one seed: rerun with --seeds 3 to see the noise)")

    by_key = {e["key"]: e for e in entries}
    comparisons = [compare(by_key[a], by_key[b]) for a, b in HYPOTHESIS if a in by_key and b in by_key]
    if comparisons:
        print("\nThe course's hypothesis: ThreeLayerNN >= TwoLayerNN >= TanhNN, and all beat NoActivationNN. Measured:")
        for c in comparisons:
            print(f"  {c['a']} - {c['b']}: {100 * c['gap']:+.2f} points (noise {100 * c['noise']:.2f}, "
                  f"so real beyond {200 * c['noise']:.2f}): {c['verdict']}")

    return comparisons


def main(argv=None) -> dict:
    args = dl_utils.parse_args(build_parser(), argv)
    args.seeds = args.seeds or (1 if args.quick else SEEDS)
    args.seed_list = [args.seed + i for i in range(args.seeds)]
    args.arch = list(dict.fromkeys(args.arch))  # drop repeats, keep the order given
    if args.where and not args.compare_runs:
        raise dl_utils.CourseError("--where only filters the runs of --compare-runs; add --compare-runs SETTING.")
    modes = [flag for flag, value in (("--lr-sweep", args.lr_sweep), ("--compare-runs", args.compare_runs),
                                      ("--gradients", args.gradients), ("--leakage", args.leakage)) if value]
    if len(modes) > 1:
        raise dl_utils.CourseError(f"{' and '.join(modes)} are different experiments: run them one at a time.")
    if args.compare_runs:
        return compare_runs(args)  # reads the log, trains nothing, needs no MNIST
    start = time.perf_counter()

    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    # One data set for every run: the same 55,000 / 5,000 split and the same
    # normalisation; only the seed changes the weights and the batch order.
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels)
    print(f"Data: {len(data.train_loader.dataset):,} training, {len(data.val_loader.dataset):,} validation, "
          f"{len(data.test_loader.dataset):,} test images")
    if args.lr_sweep:
        return run_lr_sweep(args, data, device)
    if args.gradients:
        return run_gradients(args, data, device)
    if args.leakage:
        return run_leakage(args, data, device)

    entries = train_every_network(args, data, device)  # 7. every network, every seed
    comparisons = print_table_and_hypothesis(entries, args)  # 8. the table and the hypothesis

    n, n_epochs = len(args.seed_list), len(entries[0]["history"]["epoch"])
    plot_path = plot_comparison(
        entries, args.out_dir / "architecture_comparison.png", show=args.show,
        title=f"Same data, same budget ({n_epochs} epoch{'s' if n_epochs > 1 else ''}, Adam lr {args.lr:g}, "
              f"batch {args.batch_size}), "
              f"{n} seed{'s' if n > 1 else ''} each" + (": line = mean, band and bars = worst to best seed" if n > 1 else ""))
    results = {"script": "05_experiment_architectures", "date": entries[0]["runs"][0]["date"],
               "device": dl_utils.device_name(device), "epochs": args.epochs, "batch_size": args.batch_size,
               "lr": args.lr, "seeds": args.seed_list, "subset": args.subset,
               "architectures": entries, "comparisons": comparisons,
               "total_seconds": time.perf_counter() - start}
    dl_utils.save_results(args.out_dir, "05_experiment_architectures", results)
    print(f"\nSaved {plot_path.name}, 05_experiment_architectures.json and "
          f"{', '.join('05_' + e['name'] + '.pth' for e in entries)} in {args.out_dir} "
          f"({results['total_seconds']:.0f}s in all)")
    print("Next, a network built for images: python 06_cnn_mnist.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
