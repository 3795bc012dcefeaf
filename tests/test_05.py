"""Tests for 05_experiment_architectures.py.

Smoke tests run each script in-process on the tiny synthetic MNIST (conftest.py) and check every
file it writes; unit tests check the confusion-matrix and mistake-gallery helpers on hand-made
predictions whose confusions are known, the linearity of NoActivationNN, and the parameter counts
the lessons state.
"""

import csv
import json

import matplotlib.image
import pytest
import torch

import dl_utils
from conftest import learner_photo, load_script

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


# ---------------------------------------------------------------------------
# 06: the CNN
# ---------------------------------------------------------------------------
PNGS_06 = ("cnn_training_history.png", "cnn_filters.png", "cnn_feature_maps.png", "confusion_matrix.png",
           "misclassified.png", "mlp_vs_cnn.png", "adversarial_example.png")


