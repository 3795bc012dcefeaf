"""Tests for 05_experiment_architectures.py: the four networks, the fair comparison, the flags.

Smoke tests run the lesson in-process on the tiny synthetic MNIST (conftest.py) and check every
file it writes; unit tests check the parameter counts the lesson states, the linearity of
NoActivationNN, the noise rule, that the networks are judged on validation and only the one
ranked first is scored on the test set (once per seed), and that 05 stands alone (its baseline is dl_utils.SimpleNN, the
copy of 03's, and neither 05 nor its extras load a lesson). The side experiments are tested in
test_05_break_it.py and test_compare_runs.py.
"""

import argparse
import csv
import json
import re

import matplotlib.image
import pytest
import torch

import dl_utils
from conftest import REPO, load_script

arch = load_script("05_experiment_architectures")


def assert_png(path, min_width=400):
    image = matplotlib.image.imread(path)  # fails if the file is not a PNG
    assert image.shape[1] >= min_width and image.std() > 0.01, f"{path} looks empty"


# ---------------------------------------------------------------------------
# 05: the architectures
# ---------------------------------------------------------------------------
FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "100"]  # 3 steps per run: the suite stays quick


@pytest.mark.parametrize("name, expected", [("two-layer", 101_770), ("three-layer", 235_146),
                                            ("tanh", 101_770), ("no-activation", 101_770)])
def test_05_parameter_counts_are_the_ones_stated(name, expected):
    assert dl_utils.count_parameters(arch.NETWORKS[name]()) == expected


def test_no_activation_network_is_linear_and_collapses_to_one_layer():
    torch.manual_seed(0)
    model = arch.NoActivationNN().double()
    x, y = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.randn(4, 1, 28, 28, dtype=torch.float64)
    a, b = 2.5, -0.7

    def g(z):  # f minus its bias terms: f(z) - f(0)
        return model(z) - model(torch.zeros_like(z))

    assert torch.allclose(g(a * x + b * y), a * g(x) + b * g(y), atol=1e-10)
    assert torch.allclose(model(x), model.collapsed()(x), atol=1e-10)  # W2 W1 x + (W2 b1 + b2)
    # The same check fails as soon as there is a ReLU in between:
    relu_model = arch.TwoLayerNN().double()

    def h(z):
        return relu_model(z) - relu_model(torch.zeros_like(z))

    assert not torch.allclose(h(a * x + b * y), a * h(x) + b * h(y), atol=1e-3)


def test_compare_says_within_noise_or_better():
    def entry(name, accuracies):
        import statistics
        return {"name": name, "val_accuracy": statistics.mean(accuracies),
                "val_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "val_accuracy_per_seed": accuracies}

    assert "within seed noise" in arch.compare(entry("A", [0.975, 0.979, 0.977]),
                                               entry("B", [0.976, 0.974, 0.978]))["verdict"]
    assert "A is better" in arch.compare(entry("A", [0.977, 0.978, 0.977]), entry("B", [0.92, 0.921, 0.919]))["verdict"]
    assert "cannot tell" in arch.compare(entry("A", [0.98]), entry("B", [0.97]))["verdict"]


def test_05_writes_everything(tiny_mnist, tmp_path):
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--seeds", "2"])
    saved = json.loads((tmp_path / "05_experiment_architectures.json").read_text())
    names = [entry["name"] for entry in saved["architectures"]]
    assert names == ["TwoLayerNN", "ThreeLayerNN", "TanhNN", "NoActivationNN"]
    for entry in saved["architectures"]:
        for key in ("name", "parameters", "val_accuracy", "train_seconds", "history", "val_accuracy_std",
                    "val_accuracy_per_seed", "ensemble_val_accuracy", "runs"):
            assert key in entry
        assert 0 <= entry["val_accuracy"] <= 1 and len(entry["runs"]) == 2
        # Judged on the last epoch's validation accuracy of each run (the weights the run keeps).
        assert entry["val_accuracy_per_seed"] == [run["history"]["val_accuracy"][-1] for run in entry["runs"]]
        assert entry["runs"][0]["hyperparameters"]["seed"] == 0 and entry["runs"][1]["hyperparameters"]["seed"] == 1
        checkpoint = dl_utils.load_checkpoint(tmp_path / f"05_{entry['name']}.pth")
        assert checkpoint["arch"] == entry["name"]
        model = arch.NETWORKS[entry["runs"][0]["hyperparameters"]["arch"]]()
        model.load_state_dict(checkpoint["state_dict"])  # the checkpoint rebuilds its network
    assert {c["a"] for c in saved["comparisons"]} == {"ThreeLayerNN", "TwoLayerNN"}
    assert results["architectures"][0]["val_accuracy"] == saved["architectures"][0]["val_accuracy"]
    best = max(saved["architectures"], key=lambda entry: entry["val_accuracy"])
    assert saved["chosen"]["name"] == best["name"] and len(saved["chosen"]["test_accuracy_per_seed"]) == 2
    assert 0 <= saved["chosen"]["test_accuracy"] <= 1 and "test_accuracy_std" in saved["chosen"]
    assert_png(tmp_path / "architecture_comparison.png")
    rows = list(csv.DictReader((tmp_path / "experiments.csv").open()))
    assert len(rows) == 8 and {row["arch"] for row in rows} == set(arch.NETWORKS)


def test_05_same_seed_same_result_for_a_network(tiny_mnist, tmp_path):
    """The comparison is fair only if a network's run depends on the seed alone, not on what ran before it."""
    alone = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                       "--arch", "tanh", "--seeds", "1"])
    after_others = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                              "--arch", "two-layer", "tanh", "--seeds", "1"])
    assert alone["architectures"][0]["val_accuracy"] == after_others["architectures"][1]["val_accuracy"]


@pytest.mark.parametrize("flags", [["--arch", "resnet"], ["--lr-sweep", "0.1"], ["--lr-sweep", "0.1,fast"],
                                   ["--seeds", "0"]])
def test_05_rejects_bad_flags(flags, capsys):
    with pytest.raises(SystemExit) as caught:
        arch.main(flags)
    assert caught.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_05_stands_alone_on_03s_harvested_network():
    """The baseline is 03's SimpleNN through dl_utils (identical copy), not a lesson loaded at run time."""
    assert issubclass(arch.TwoLayerNN, dl_utils.SimpleNN)
    assert [name for name, _ in arch.TwoLayerNN().named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]  # a checkpoint dl_utils.build_model could load
    files = [REPO / "05_experiment_architectures.py",
             *(REPO / "extras" / f"{name}.py" for name in ("lr_sweep", "gradients", "leakage", "compare_runs"))]
    loads_a_lesson = re.compile(r"importlib|import_script|run_path|import_module|load_script|from\s+0\d|import\s+0\d")
    for path in files:
        assert not loads_a_lesson.search(path.read_text(encoding="utf-8")), f"{path.name} loads a lesson"


def test_05_settings_are_the_courses():
    parser = arch.build_parser()
    assert parser.get_default("batch_size") == dl_utils.BATCH_SIZE == 64  # the shared default, not a copy
    assert parser.get_default("lr") == 1e-3 and parser.get_default("epochs") == 5
    assert parser.get_default("seeds") == 3 and parser.get_default("arch") == list(arch.NETWORKS)


@pytest.mark.parametrize("argv, seeds, expected", [(["--quick"], 3, [0]),
                                                   (["--quick", "--seeds", "3"], 3, [0, 1, 2]),
                                                   (["--quick", "--seeds=2"], 2, [0, 1]),
                                                   ([], 3, [0, 1, 2]), (["--seed", "5"], 2, [5, 6])])
def test_quick_trains_one_seed_unless_seeds_is_typed(argv, seeds, expected):
    args = argparse.Namespace(quick="--quick" in argv, seeds=seeds, seed=5 if "--seed" in argv else 0)
    assert arch.seed_list(args, argv) == expected


def test_05_prints_one_line_per_run_and_records_its_settings(tiny_mnist, tmp_path, capsys):
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--epochs", "2",
                         "--arch", "two-layer", "tanh", "--seeds", "2"])
    out = capsys.readouterr().out
    assert "Epoch 1/2" not in out  # fit's per-epoch lines are silenced: 4 runs, 4 lines
    assert len(re.findall(r"seed \d: validation accuracy", out)) == 4
    assert [line for line in out.splitlines() if line.startswith("=== ")][:5] == [
        "=== 1. Device and data ===",
        "=== 2. Every network, every seed: 2 epochs, batch 100, Adam lr 0.001, seeds [0, 1] ===",
        "=== 3. The table, and the hypothesis against the seed noise (validation accuracy) ===",
        "=== 4. The plot ===", "=== 5. The final exam: the test set, read once ==="]
    assert len(re.findall(r"test accuracy", out)) == 1  # printed once, for the chosen network
    assert "Settings: the defaults, except epochs 2, batch size 100, seeds 2, arch ['two-layer', 'tanh'], " \
           "subset 300" in " ".join(out.split())  # wrapped at 100 columns
    assert results["config"]["epochs"] == 2 and results["config"]["batch_size"] == 100
    assert len(results["architectures"][0]["history"]["epoch"]) == 2
    wide = [line for line in out.splitlines() if len(line) > 120 and str(tmp_path) not in line]
    assert wide == []  # the table and its notes fit a terminal (paths aside)


# ---------------------------------------------------------------------------
# Choose on validation; read the test set once, for the choice only
# ---------------------------------------------------------------------------
class CountingLoader(dl_utils.InMemoryLoader):
    """The test loader, counting every pass over it (any evaluate or collect_predictions reads it this way)."""

    passes = 0

    def __iter__(self):
        CountingLoader.passes += 1
        yield from super().__iter__()


def test_05_tests_only_the_network_validation_chose(tiny_mnist, tmp_path, monkeypatch):
    """Validation is rigged to rank TanhNN first: only its 2 models may meet the test set, once each."""
    rigged = {"two-layer": 0.50, "tanh": 0.90, "no-activation": 0.70}  # last-epoch validation accuracy
    real_train_once, real_load, real_evaluate = arch.train_once, dl_utils.load_mnist_data, dl_utils.evaluate
    tested = []

    def train_once(name, **kwargs):
        model, results = real_train_once(name, **kwargs)
        assert results["test_accuracy"] is None  # the comparison's runs leave the test set alone
        results["final_val_accuracy"] = rigged[name] + 0.01 * kwargs["seed"]
        return model, results

    def load_mnist_data(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.test_loader.__class__ = CountingLoader
        return data

    def evaluate(model, loader, loss_fn):
        if isinstance(loader, CountingLoader):
            tested.append(type(model).__name__)
        return real_evaluate(model, loader, loss_fn)

    CountingLoader.passes = 0
    monkeypatch.setattr(arch, "train_once", train_once)
    monkeypatch.setattr(dl_utils, "load_mnist_data", load_mnist_data)
    monkeypatch.setattr(dl_utils, "evaluate", evaluate)
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                         "--arch", "two-layer", "tanh", "no-activation", "--seeds", "2"])
    assert tested == ["TanhNN", "TanhNN"] and CountingLoader.passes == 2  # one pass per seed of the chosen
    saved = json.loads((tmp_path / "05_experiment_architectures.json").read_text())
    assert saved["chosen"]["name"] == results["chosen"]["name"] == "TanhNN"
    assert saved["chosen"]["test_accuracy"] == sum(saved["chosen"]["test_accuracy_per_seed"]) / 2
    # No other test accuracy anywhere in the file: not per network, not per run, not in the ensemble.
    for entry in saved["architectures"]:
        assert not [key for key in entry if key.startswith(("test", "ensemble_test"))]
        assert all(run["test_accuracy"] is None and run["test_loss"] is None for run in entry["runs"])
    assert saved["comparisons"][0]["gap"] == pytest.approx(0.50 - 0.90)  # the hypothesis is checked on validation
    text = json.dumps({key: value for key, value in saved.items() if key != "chosen"})
    assert re.search(r'"test_accuracy(_std|_per_seed)?": [0-9]', text) is None
