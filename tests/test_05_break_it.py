"""Tests for 05_experiment_architectures.py's side experiments in extras/, on the tiny synthetic MNIST.

The learning-rate sweep must choose by validation accuracy (a sweep rigged so that validation and test
disagree shows which one it used); the seeds' ensemble averages probabilities; --gradients builds
deep MLPs whose gradients vanish with sigmoid and not with batch norm; --leakage measures that picking
by test accuracy flatters and picking by validation does not. Bad values exit with a message.
Each runs through 05's flag (05 calls into extras/lr_sweep.py, gradients.py, leakage.py).
"""

import json
import math

import pytest
import torch

import dl_utils
from conftest import assert_png, load_script
from extras import gradients, leakage, lr_sweep

arch = load_script("05_experiment_architectures")
FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "100"]


# ---------------------------------------------------------------------------
# The sweep chooses by validation, and reads the test accuracy of its choice
# ---------------------------------------------------------------------------
def test_05_lr_sweep_writes_rows_and_its_choice(tiny_mnist, tmp_path):
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST,
                         "--seeds", "2", "--arch", "two-layer", "--lr-sweep", "0.01,0.0001"])
    saved = json.loads((tmp_path / "lr_sweep.json").read_text())
    assert [row["lr"] for row in saved["lr_sweep"]] == [0.0001, 0.01]
    for row in saved["lr_sweep"]:
        assert len(row["val_accuracy_per_seed"]) == 2
        assert row["val_accuracy"] == pytest.approx(sum(row["val_accuracy_per_seed"]) / 2)
    best_val = max(saved["lr_sweep"], key=lambda row: row["val_accuracy"])
    assert saved["chosen_lr"] == best_val["lr"] == results["chosen_lr"]
    assert len(best_val["test_accuracy_per_seed"]) == 2 and 0 <= saved["chosen_test_accuracy"] <= 1
    others = [row for row in saved["lr_sweep"] if row is not best_val and row["lr"] != best_val["lr"]]
    assert others and all("test_accuracy" not in row for row in others)  # the test set: the choice only
    assert_png(tmp_path / "lr_sweep.png")


def test_05_lr_sweep_picks_by_validation_when_test_disagrees(tiny_mnist, tmp_path, monkeypatch):
    """lr 0.001 is best on test, lr 0.01 on validation: the sweep must choose 0.01."""
    rigged = {0.001: (0.80, 0.99), 0.01: (0.95, 0.70), 0.1: (0.85, 0.90)}  # lr: (validation, test)

    tested = []

    def fake_train_once(name, *, seed, lr, data, args, device, test=True):
        assert test is False  # the sweep's runs never read the test set
        return lr, {"final_val_accuracy": rigged[lr][0], "test_accuracy": None}

    def fake_test_accuracy(model, data):  # the "model" is its lr here
        tested.append(model)
        return rigged[model][1]

    monkeypatch.setattr(arch, "train_once", fake_train_once)
    monkeypatch.setattr(lr_sweep, "test_accuracy", fake_test_accuracy)
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--seeds", "2",
                         "--lr-sweep", "0.001,0.01,0.1"])
    assert results["chosen_lr"] == 0.01 and results["chosen_test_accuracy"] == 0.70
    assert tested == [0.01, 0.01]  # the test set, read for the chosen lr's two seeds only
    assert results["chosen_by"] == "val_accuracy"


def test_choose_by_validation_ranks_diverging_learning_rates_last():
    rows = [{"lr": 0.1, "val_accuracy": 0.97, "diverged_runs": 1},
            {"lr": 0.01, "val_accuracy": 0.95, "diverged_runs": 0},
            {"lr": 1.0, "val_accuracy": None, "diverged_runs": 3}]
    assert lr_sweep.choose_by_validation(rows)["lr"] == 0.01
    with pytest.raises(dl_utils.CourseError, match="diverged"):
        lr_sweep.choose_by_validation([rows[2]])


# ---------------------------------------------------------------------------
# Ensemble
# ---------------------------------------------------------------------------
def test_ensemble_averages_probabilities():
    labels = torch.tensor([0, 1, 2])
    # Each model gets a different image wrong, confidently enough to lose it, not to outvote two others.
    a = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.9, 0.1], [0.0, 0.1, 0.9]])  # right, right, right
    b = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.9, 0.1], [0.0, 0.2, 0.8]])  # wrong, right, right
    c = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.4, 0.6], [0.0, 0.3, 0.7]])  # right, wrong, right
    assert arch.ensemble_accuracy([b], labels) == pytest.approx(2 / 3)
    assert arch.ensemble_accuracy([b, c], labels) == pytest.approx(1.0)  # (0.5, 0.5) ties go to class 0
    assert arch.ensemble_accuracy([a, b, c], labels) == pytest.approx(1.0)
    # Averaging probabilities, not votes: one very confident model can outweigh two unsure ones.
    sure = torch.tensor([[0.0, 1.0, 0.0]])
    unsure = torch.tensor([[0.45, 0.4, 0.15]])
    assert arch.ensemble_accuracy([sure, unsure, unsure], torch.tensor([0])) == 0.0


def test_05_comparison_reports_the_ensemble(tiny_mnist, tmp_path, monkeypatch):
    seen = []
    real = arch.ensemble_accuracy

    def spy(probabilities, labels):
        seen.append([p.clone() for p in probabilities])
        return real(probabilities, labels)

    monkeypatch.setattr(arch, "ensemble_accuracy", spy)
    two = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--arch", "two-layer",
                     "--seeds", "2"])["architectures"][0]
    # One average of two DIFFERENT models' validation probabilities (one per seed), scored once.
    labels = dl_utils.load_mnist_data(tiny_mnist, subset=300).val_loader.labels
    assert len(seen) == 1 and len(seen[0]) == 2 and seen[0][0].shape == (len(labels), 10)
    assert not torch.equal(seen[0][0], seen[0][1])
    assert two["ensemble_val_accuracy"] == real(seen[0], labels)
    one = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--arch", "two-layer",
                     "--seeds", "1"])["architectures"][0]
    assert one["ensemble_val_accuracy"] is None  # one model is no ensemble


# ---------------------------------------------------------------------------
# Vanishing and exploding gradients
# ---------------------------------------------------------------------------
def test_deep_mlp_layers_and_initialisations():
    model = gradients.DeepMLP(5, 16, "relu", batch_norm=True)
    linears = model.linears()
    assert len(linears) == 5 and linears[0].in_features == 784 and linears[-1].out_features == 10
    assert sum(isinstance(layer, torch.nn.BatchNorm1d) for layer in model.layers) == 4  # none after the last
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    torch.manual_seed(0)
    wide = gradients.DeepMLP(3, 2000, "relu")
    default_std = wide.linears()[1].weight.std().item()
    assert default_std == pytest.approx(1 / math.sqrt(3 * 2000), rel=0.05)  # PyTorch: U(-1/sqrt(n), 1/sqrt(n))
    gradients.initialise(wide, "kaiming")
    assert wide.linears()[1].weight.std().item() == pytest.approx(math.sqrt(2 / 2000), rel=0.05)
    assert wide.linears()[1].bias.abs().max().item() == 0
    gradients.initialise(wide, "large")
    assert wide.linears()[1].weight.std().item() == pytest.approx(1.5 * math.sqrt(2 / 2000), rel=0.05)


def test_05_gradients_vanish_with_sigmoid_and_not_with_batch_norm(tiny_mnist, tmp_path):
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--gradients",
                         "--depth", "8", "--width", "32", "--steps", "3", "--batch-size", "50"])
    saved = json.loads((tmp_path / "gradients.json").read_text())
    nets = {(n["activation"], n["init"], n["batch_norm"]): n for n in saved["networks"]}
    assert len(nets) == len(gradients.CONFIGS) and results["depth"] == 8
    for net in saved["networks"]:
        assert len(net["grad_norm_at_init"]) == 8
    sigmoid, fixed = nets[("sigmoid", "default", False)], nets[("sigmoid", "default", True)]
    assert sigmoid["grad_norm_at_init"][0] < 1e-3 * sigmoid["grad_norm_at_init"][-1]  # 0.25 per layer, 7 times
    assert fixed["grad_norm_at_init"][0] > 0.1 * fixed["grad_norm_at_init"][-1]  # batch norm keeps it
    kaiming, default = nets[("relu", "kaiming", False)], nets[("relu", "default", False)]
    assert kaiming["first_over_last_at_init"] > 3 * default["first_over_last_at_init"]  # x 1/6 per layer vs x 1
    assert nets[("relu", "large", False)]["grad_norm_at_init"][0] > 10 * kaiming["grad_norm_at_init"][0]
    assert_png(tmp_path / "gradient_norms.png")


# ---------------------------------------------------------------------------
# Data leakage
# ---------------------------------------------------------------------------
def test_selection_optimism_flatters_the_test_picked_winner():
    """20 runs that are equally good in truth: the best on half A is only lucky on A."""
    generator = torch.Generator().manual_seed(0)
    correct = (torch.rand(20, 4000, generator=generator) < 0.9).float()
    val = torch.rand(20, generator=generator).tolist()  # validation knows nothing about the test set
    result = leakage.selection_optimism(correct, val, splits=200, seed=1)
    assert result["picked_by_test_gap_mean"] > 0.01  # ~1.9 std of a 2000-image half's accuracy, times sqrt(2)
    assert abs(result["picked_by_val_gap_mean"]) < 0.003
    assert len(result["picked_by_test_gaps"]) == 200


def test_05_leakage_writes_its_measurement(tiny_mnist, tmp_path):
    results = arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, "--leakage", "3"])
    saved = json.loads((tmp_path / "leakage.json").read_text())
    assert saved["runs"] == 3 and saved["seeds"] == [0, 1, 2] and len(saved["test_accuracy"]) == 3
    split = saved["one_split"]
    assert split["picked_by_test"]["on_a"] == pytest.approx(max(
        split["picked_by_test"]["on_a"], split["picked_by_val"]["on_a"]))  # best on A, by construction
    assert results["optimism"]["splits"] == leakage.LEAKAGE_SPLITS
    assert_png(tmp_path / "leakage.png")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [(["--gradients", "--depth", "1"], "at least 2 Linear layers"),
                                            (["--gradients", "--depth", "two"], "whole number"),
                                            (["--leakage", "1"], "at least 2 runs"),
                                            (["--gradients", "--width", "0"], "positive")])
def test_05_rejects_bad_experiment_values(flags, message, capsys):
    with pytest.raises(SystemExit) as caught:
        arch.main(flags)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_05_one_experiment_at_a_time(tiny_mnist, tmp_path):
    with pytest.raises(dl_utils.CourseError, match="one at a time"):
        arch.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--gradients", "--leakage", "3"])
