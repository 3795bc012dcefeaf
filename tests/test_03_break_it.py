"""Tests for 03_train_mnist.py's "break it" flags, on the tiny synthetic MNIST.

--init zeros/constant leave one distinct hidden neuron; --labels random shuffles only the training
labels, once, with a fixed seed; --loss mse is squared error on softmax probabilities; --normalize
feeds the four input variants (and --no-normalize still means "none"); the untrained network's report
says loss ~ ln 10 and chance accuracy. Unknown values exit with argparse's message.
"""

import math

import pytest
import torch

import dl_utils
from conftest import load_script

train = load_script("03_train_mnist")
FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "50"]


def run03(tiny_mnist, tmp_path, *flags):
    return train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, *flags])


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_03_equal_start_leaves_one_neuron(tiny_mnist, tmp_path, init):
    results = run03(tiny_mnist, tmp_path, "--init", init, "--epochs", "2")
    assert results["distinct_hidden_neurons"] == 1
    assert results["hyperparameters"]["init"] == init
    if init == "zeros":  # only fc2's bias can move: it predicts one digit for every image
        assert results["test_accuracy"] <= 0.2
        checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
        assert checkpoint["state_dict"]["fc1.weight"].abs().max() == 0


def test_03_default_init_keeps_every_neuron_distinct_and_starts_at_chance(tiny_mnist, tmp_path):
    results = run03(tiny_mnist, tmp_path)
    assert results["distinct_hidden_neurons"] == train.HIDDEN
    before = results["before_training"]
    assert abs(before["val_loss"] - math.log(10)) < 0.1  # 10 near-equal scores: -ln(1/10)
    assert before["val_accuracy"] < 0.3 and results["best_val_accuracy"] > before["val_accuracy"] + 0.2
    assert len(before["guesses"]) == train.PREVIEW_DIGITS == len(before["labels"])


def test_shuffle_training_labels_is_one_fixed_permutation():
    labels = torch.arange(1000) % 10
    loaders = [dl_utils.InMemoryLoader(torch.zeros(1000, 1, 28, 28), labels.clone(), batch_size=100, shuffle=True)
               for _ in range(2)]
    kept = [train.shuffle_training_labels(loader) for loader in loaders]
    assert torch.equal(loaders[0].labels, loaders[1].labels)  # the same fixed shuffle each time
    assert torch.equal(torch.bincount(loaders[0].labels), torch.bincount(labels))  # same digit counts
    assert 0.05 < kept[0] < 0.15 and not torch.equal(loaders[0].labels, labels)
    assert torch.equal(loaders[0].dataset.tensors[1], loaders[0].labels)
    batch_labels = torch.cat([batch for _, batch in loaders[0]])
    assert torch.equal(torch.sort(batch_labels).values, torch.sort(labels).values)


def test_03_random_labels_leave_validation_and_test_true(tiny_mnist, tmp_path):
    honest = run03(tiny_mnist, tmp_path / "a", "--epochs", "3")
    broken = run03(tiny_mnist, tmp_path / "b", "--labels", "random", "--epochs", "3")
    assert broken["hyperparameters"]["labels"] == "random"
    assert honest["test_accuracy"] > 0.8 and broken["test_accuracy"] < 0.35


def test_softmax_mse_loss_is_squared_error_on_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits, dim=1)
    expected = ((p - torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])) ** 2).mean()
    assert torch.allclose(train.SoftmaxMSELoss()(logits, labels), expected)
    # The gradient difference the docstring explains: a confidently wrong answer gets
    # almost no push from squared error, a strong one from cross-entropy.
    wrong = torch.tensor([[10.0, 0.0, 0.0]], requires_grad=True)
    train.SoftmaxMSELoss()(wrong, torch.tensor([2])).backward()
    mse_push = wrong.grad.abs().max().item()
    wrong.grad = None
    torch.nn.CrossEntropyLoss()(wrong, torch.tensor([2])).backward()
    assert wrong.grad.abs().max().item() > 100 * mse_push


def test_03_mse_loss_learns_and_starts_near_its_own_chance_value(tiny_mnist, tmp_path):
    results = run03(tiny_mnist, tmp_path, "--loss", "mse", "--epochs", "3", "--lr", "0.003")
    # Untrained: p ~ 1/10 everywhere, so ((0.9)^2 + 9 * 0.1^2) / 10 = 0.09 per number.
    assert abs(results["before_training"]["val_loss"] - 0.09) < 0.005
    assert results["test_loss"] < 0.07 and results["test_accuracy"] > 0.3


@pytest.mark.parametrize("flags, mean_is_zero, std_is_one", [
    (["--normalize", "both"], False, False), (["--normalize", "center"], False, True),
    (["--normalize", "scale"], True, False), (["--normalize", "none"], True, True), (["--no-normalize"], True, True)])
def test_03_normalize_variants(tiny_mnist, tmp_path, flags, mean_is_zero, std_is_one):
    run03(tiny_mnist, tmp_path, *flags)
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    stats = checkpoint["normalization"]  # what 04 will apply: the same as training used
    assert (stats["mean"] == 0.0) == mean_is_zero and (stats["std"] == 1.0) == std_is_one
    full = dl_utils.load_mnist_data(tiny_mnist, subset=300)
    if not mean_is_zero:
        assert stats["mean"] == pytest.approx(full.mean)  # from the training images only
    if not std_is_one:
        assert stats["std"] == pytest.approx(full.std)


@pytest.mark.parametrize("flag, value", [("--init", "ones"), ("--labels", "fake"), ("--loss", "hinge"),
                                         ("--normalize", "half"), ("--pixels", "sorted")])
def test_03_rejects_unknown_break_it_values(flag, value, capsys):
    with pytest.raises(SystemExit) as caught:
        train.main([flag, value])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and f"argument {flag}: invalid choice: '{value}'" in err
