"""Tests for 05_experiment_architectures.py: the four networks, the fair comparison, the flags.

Smoke tests run the lesson in-process on the tiny synthetic MNIST (conftest.py) and check every
file it writes; unit tests check the parameter counts the lesson states, the linearity of
NoActivationNN, the noise rule, and that 05 stands alone (its baseline is dl_utils.SimpleNN, the
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
        return {"name": name, "test_accuracy": statistics.mean(accuracies),
                "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "test_accuracy_per_seed": accuracies}

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
        for key in ("name", "parameters", "test_accuracy", "train_seconds", "history", "test_accuracy_std",
                    "test_accuracy_per_seed", "runs"):
            assert key in entry
        assert 0 <= entry["test_accuracy"] <= 1 and len(entry["runs"]) == 2
        assert entry["runs"][0]["hyperparameters"]["seed"] == 0 and entry["runs"][1]["hyperparameters"]["seed"] == 1
        checkpoint = dl_utils.load_checkpoint(tmp_path / f"05_{entry['name']}.pth")
        assert checkpoint["arch"] == entry["name"]
        model = arch.NETWORKS[entry["runs"][0]["hyperparameters"]["arch"]]()
        model.load_state_dict(checkpoint["state_dict"])  # the checkpoint rebuilds its network
    assert {c["a"] for c in saved["comparisons"]} == {"ThreeLayerNN", "TwoLayerNN"}
    assert results["architectures"][0]["test_accuracy"] == saved["architectures"][0]["test_accuracy"]
    assert_png(tmp_path / "architecture_comparison.png")
    rows = list(csv.DictReader((tmp_path / "experiments.csv").open()))
    assert len(rows) == 8 and {row["arch"] for row in rows} == set(arch.NETWORKS)


def test_05_same_seed_same_result_for_a_network(tiny_mnist, tmp_path):
    """The comparison is fair only if a network's run depends on the seed alone, not on what ran before it."""
    alone = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                       "--arch", "tanh", "--seeds", "1"])
    after_others = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                              "--arch", "two-layer", "tanh", "--seeds", "1"])
    assert alone["architectures"][0]["test_accuracy"] == after_others["architectures"][1]["test_accuracy"]


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
    assert len(re.findall(r"seed \d: test accuracy", out)) == 4
    assert [line for line in out.splitlines() if line.startswith("=== ")][:4] == [
        "=== 1. Device and data ===",
        "=== 2. Every network, every seed: 2 epochs, batch 100, Adam lr 0.001, seeds [0, 1] ===",
        "=== 3. The table, and the hypothesis against the seed noise ===", "=== 4. Plot and save ==="]
    assert "Settings: the defaults, except epochs 2, batch size 100, seeds 2, arch ['two-layer', 'tanh'], " \
           "subset 300" in " ".join(out.split())  # wrapped at 100 columns
    assert results["config"]["epochs"] == 2 and results["config"]["batch_size"] == 100
    assert len(results["architectures"][0]["history"]["epoch"]) == 2
    wide = [line for line in out.splitlines() if len(line) > 120 and str(tmp_path) not in line]
    assert wide == []  # the table and its notes fit a terminal (paths aside)
