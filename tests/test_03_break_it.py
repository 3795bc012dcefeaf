"""Tests for 03_train_mnist.py's "break it" section, on the tiny synthetic MNIST.

--init zeros/constant leave one distinct hidden neuron (and only then is the count printed); --labels random
shuffles only the training labels, once, with a fixed seed; --loss mse is squared error on softmax
probabilities; --normalize feeds the four input variants, computed from the data already loaded exactly
as from the raw pixels (and --no-normalize still means "none"); the untrained network's report says
loss ~ ln 10 and chance accuracy. Unknown values exit with argparse's message.
"""

import math
import re
from types import SimpleNamespace

import pytest
import torch

import dl_utils
from conftest import load_script

train = load_script("03_train_mnist")
FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "50"]


def run03(tiny_mnist, tmp_path, *flags):
    return train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST, *flags])


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_03_equal_start_leaves_one_neuron(tiny_mnist, tmp_path, init, capsys):
    results = run03(tiny_mnist, tmp_path, "--init", init, "--epochs", "2")
    assert results["distinct_hidden_neurons"] == 1
    assert results["hyperparameters"]["init"] == init
    out = capsys.readouterr().out
    assert f"Distinct hidden neurons: 1 of {train.HIDDEN} (they started equal" in out
    # equal weights give 10 equal scores: one confidence, said once (not "10-10%")
    assert "confidence 10.0%)" in out and "10.0% to 10.0%" not in out
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    fc1 = checkpoint["state_dict"]["fc1.weight"]
    assert torch.equal(fc1, fc1[:1].expand_as(fc1))  # every row (neuron) the same, as the count says
    if init == "zeros":  # only fc2's bias can move: it predicts one digit for every image
        assert results["test_accuracy"] <= 0.2
        assert fc1.abs().max() == 0


def test_03_default_init_keeps_every_neuron_distinct_and_starts_at_chance(tiny_mnist, tmp_path, capsys):
    results = run03(tiny_mnist, tmp_path)
    out = capsys.readouterr().out
    # a random start: nothing to report, so nothing is printed (the count is for --init zeros/constant)
    assert results["distinct_hidden_neurons"] is None and "Distinct hidden neurons" not in out
    # ... yet every neuron of the trained network is its own
    model = train.SimpleNN(**dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")["model_config"])
    model.load_state_dict(dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")["state_dict"])
    assert train.distinct_hidden_neurons(model) == train.HIDDEN
    before = results["before_training"]
    assert abs(before["val_loss"] - math.log(10)) < 0.1  # 10 near-equal scores: -ln(1/10)
    assert before["val_accuracy"] < 0.3 and results["best_val_accuracy"] > before["val_accuracy"] + 0.2
    assert len(before["guesses"]) == train.PREVIEW_DIGITS == len(before["labels"])
    # the model printout shows only layers that do something: no Identity, no Dropout(p=0.0)
    printout = out[out.index("SimpleNN("):out.index("Parameters:")]
    assert "fc1): Linear(in_features=784, out_features=128" in printout
    assert "Identity" not in printout and "Dropout" not in printout and "BatchNorm" not in printout


def loaded(tiny_mnist, seed=0):
    return dl_utils.load_mnist_data(tiny_mnist, batch_size=100, subset=300, seed=seed)


def break_it(data, normalize="both", labels="true"):
    train.break_the_data(data, SimpleNamespace(normalize=normalize, labels=labels, label_seed=train.LABEL_SEED))
    return data


def test_random_labels_are_one_fixed_shuffle_of_the_training_labels_only(tiny_mnist, capsys):
    true = loaded(tiny_mnist)
    broken = [break_it(loaded(tiny_mnist, seed), labels="random") for seed in (0, 5)]
    shuffled = broken[0].train_loader.labels
    assert torch.equal(shuffled, broken[1].train_loader.labels)  # the same shuffle, whatever --seed
    assert not torch.equal(shuffled, true.train_loader.labels)
    assert torch.equal(torch.bincount(shuffled), torch.bincount(true.train_loader.labels))  # same digit counts
    kept = float(re.search(r"shuffled; ([\d.]+)% happen to be right", capsys.readouterr().out).group(1))
    assert 5 < kept < 15 and kept == pytest.approx(100 * float((shuffled == true.train_loader.labels).float().mean()), abs=0.1)
    for name in ("val_loader", "test_loader"):  # honest scores: validation and test keep the true labels
        assert torch.equal(getattr(broken[0], name).labels, getattr(true, name).labels)
    for name in ("train_loader", "val_loader", "test_loader"):  # and the images are untouched
        assert torch.equal(getattr(broken[0], name).images, getattr(true, name).images)
    # what training iterates over is the shuffled labels
    assert torch.equal(broken[0].train_loader.dataset.tensors[1], shuffled)
    batch_labels = torch.cat([batch for _, batch in broken[0].train_loader])
    assert torch.equal(torch.sort(batch_labels).values, torch.sort(shuffled).values)


@pytest.mark.parametrize("normalize", ["both", "center", "scale", "none"])
def test_normalize_variants_equal_the_formula_on_the_raw_pixels(tiny_mnist, normalize, capsys):
    """break_the_data edits the loaded tensors; the result must be what (x - m) / s of the raw pixels gives."""
    data = loaded(tiny_mnist)
    mean, std = data.mean, data.std  # of the training pixels
    m, s = {"both": (mean, std), "center": (mean, 1.0), "scale": (0.0, std), "none": (0.0, 1.0)}[normalize]
    break_it(data, normalize)
    assert (data.mean, data.std) == (m, s)  # what the checkpoint stores, so 04 feeds the same inputs
    train_images, _ = dl_utils.read_mnist(tiny_mnist, train=True, download=False)
    test_images, _ = dl_utils.read_mnist(tiny_mnist, train=False, download=False)
    train_idx, val_idx = dl_utils.split_indices(len(train_images))
    for loader, raw in ((data.train_loader, train_images[train_idx[:300]]), (data.val_loader, train_images[val_idx]),
                        (data.test_loader, test_images)):
        x = raw.double().unsqueeze(1) / 255  # pixels in [0, 1], (N, 1, 28, 28)
        torch.testing.assert_close(loader.images.double(), (x - m) / s, atol=2e-5, rtol=0)
    if normalize == "none":
        assert loader.images.min() >= -1e-6 and loader.images.max() <= 1 + 1e-6
    out = capsys.readouterr().out
    assert ("--normalize" in out) == (normalize != "both")  # the default says nothing


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


@pytest.mark.parametrize("flags, mean_is_zero, std_is_one", [  # every variant's tensors: the test above
    (["--normalize", "center"], False, True), (["--normalize", "scale"], True, False), (["--no-normalize"], True, True)])
def test_03_normalize_variants_reach_the_checkpoint(tiny_mnist, tmp_path, flags, mean_is_zero, std_is_one):
    results = run03(tiny_mnist, tmp_path, *flags)
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    stats = checkpoint["normalization"]  # what 04 will apply: the same as training used
    assert (stats["mean"] == 0.0) == mean_is_zero and (stats["std"] == 1.0) == std_is_one
    full = dl_utils.load_mnist_data(tiny_mnist, subset=300)
    if not mean_is_zero:
        assert stats["mean"] == pytest.approx(full.mean)  # from the training images only
    if not std_is_one:
        assert stats["std"] == pytest.approx(full.std)
    assert results["hyperparameters"]["normalize"] == (flags[1] if len(flags) == 2 else "none")


@pytest.mark.parametrize("flag, value", [("--init", "ones"), ("--labels", "fake"), ("--loss", "hinge"),
                                         ("--normalize", "half"), ("--pixels", "sorted")])
def test_03_rejects_unknown_break_it_values(flag, value, capsys):
    with pytest.raises(SystemExit) as caught:
        train.main([flag, value])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and f"argument {flag}: invalid choice: '{value}'" in err


def test_the_break_it_and_preview_flags_reach_the_code(tiny_mnist, tmp_path):
    """--preview-digits, --constant-weight and --label-seed change what runs, not only what is recorded."""
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--subset", "100",
                          "--preview-digits", "3"])
    assert len(results["before_training"]["guesses"]) == 3
    model = train.SimpleNN(hidden=8)
    train.initialise_weights(model, "constant", 0.05)
    assert torch.all(model.fc1.weight == 0.05) and torch.all(model.fc2.bias == 0.05)
    shuffles = []
    for seed in (0, 1):
        data = dl_utils.load_mnist_data(tiny_mnist)
        train.break_the_data(data, SimpleNamespace(normalize="both", labels="random", label_seed=seed))
        shuffles.append(data.train_loader.labels.clone())
    assert not torch.equal(shuffles[0], shuffles[1])
