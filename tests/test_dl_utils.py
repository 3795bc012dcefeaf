"""Unit tests for dl_utils.py, on the tiny synthetic MNIST (see conftest.py)."""

import argparse
import csv
import math

import pytest
import torch
from torch import nn

import dl_utils
from conftest import N_TEST, N_TRAIN, load_script


@pytest.fixture(scope="module")
def SimpleNN():
    return load_script("03_train_mnist").SimpleNN


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("check, text", [
    (dl_utils.positive_int, "0"), (dl_utils.positive_int, "-3"), (dl_utils.positive_int, "2.5"),
    (dl_utils.positive_float, "0"), (dl_utils.positive_float, "-1e-3"), (dl_utils.positive_float, "nan"),
    (dl_utils.positive_float, "abc"), (dl_utils.fraction, "1"), (dl_utils.fraction, "-0.1"),
])
def test_argument_types_reject_bad_values(check, text):
    with pytest.raises(argparse.ArgumentTypeError):
        check(text)


def test_argument_types_accept_good_values():
    assert dl_utils.positive_int("12") == 12
    assert dl_utils.positive_float("1e-3") == 0.001
    assert dl_utils.fraction("0.2") == 0.2


def test_quick_means_one_epoch_on_a_subset():
    parser = dl_utils.add_common_args(argparse.ArgumentParser(), epochs=10, batch_size=64, lr=1e-3)
    args = dl_utils.parse_args(parser, ["--quick"])
    assert (args.epochs, args.subset) == (1, dl_utils.QUICK_SUBSET)
    assert dl_utils.parse_args(parser, []).epochs == 10


# --------------------------------------------------------------------------- device and seeds
def test_device_auto_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dl_utils, "_mps_available", lambda: False)
    device, why = dl_utils.get_device("auto")
    assert device.type == "cpu" and "CPU" in why


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_asking_for_a_missing_device_is_a_clear_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dl_utils, "_mps_available", lambda: False)
    with pytest.raises(dl_utils.CourseError, match="--device auto"):
        dl_utils.get_device(name)


def test_same_seed_same_numbers_different_seed_different_numbers(SimpleNN):
    dl_utils.set_seed(7)
    a = SimpleNN().fc1.weight.clone(), torch.rand(3)
    dl_utils.set_seed(7)
    b = SimpleNN().fc1.weight.clone(), torch.rand(3)
    dl_utils.set_seed(8)
    c = SimpleNN().fc1.weight.clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c)


# --------------------------------------------------------------------------- data
def test_data_dir_precedence(monkeypatch, tmp_path):
    assert dl_utils.resolve_data_dir() == dl_utils.DEFAULT_DATA_DIR
    assert dl_utils.DEFAULT_DATA_DIR.parent == dl_utils.SCRIPT_DIR  # beside the scripts, not the cwd
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "env"))
    assert dl_utils.resolve_data_dir() == tmp_path / "env"
    assert dl_utils.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_split_sizes_and_no_overlap(tiny_mnist):
    train, val = dl_utils.split_indices(60_000)
    assert (len(train), len(val)) == (55_000, 5_000)
    assert len(set(train.tolist()) | set(val.tolist())) == 60_000  # disjoint and complete
    assert torch.equal(dl_utils.split_indices(60_000)[1], val)  # fixed: the same every time

    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    n_val = round(N_TRAIN / 12)
    assert len(data.train_loader.dataset) == N_TRAIN - n_val
    assert len(data.val_loader.dataset) == n_val
    assert len(data.test_loader.dataset) == N_TEST


def test_loader_batches_shapes_and_last_partial_batch(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=64, subset=130)
    loader = data.train_loader
    sizes = [len(labels) for _, labels in loader]
    assert len(loader) == 3 and sizes == [64, 64, 2]  # 130 = 64 + 64 + 2: nothing dropped
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64


def test_shuffling_is_seeded_and_changes_every_epoch(tiny_mnist):
    def epoch_labels(loader):
        return torch.cat([labels for _, labels in loader])

    first = dl_utils.load_mnist_data(tiny_mnist, batch_size=100, seed=3).train_loader
    second = dl_utils.load_mnist_data(tiny_mnist, batch_size=100, seed=3).train_loader
    epoch1 = epoch_labels(first)
    assert torch.equal(epoch1, epoch_labels(second))  # same seed, same order
    epoch2 = epoch_labels(first)
    assert not torch.equal(epoch1, epoch2)  # next epoch, new order
    assert torch.equal(epoch1.sort().values, epoch2.sort().values)  # of the same images


def test_normalization_matches_torch_and_is_applied(tiny_mnist):
    images, _ = dl_utils.read_mnist(tiny_mnist, train=True, download=False)
    mean, std = dl_utils.normalization_stats(images)
    pixels = images.double() / 255
    assert mean == pytest.approx(pixels.mean().item(), abs=1e-9)
    assert std == pytest.approx(pixels.std().item(), abs=1e-9)

    data = dl_utils.load_mnist_data(tiny_mnist)
    train_pixels = data.train_loader.images
    assert train_pixels.mean().item() == pytest.approx(0, abs=1e-4)
    assert train_pixels.std().item() == pytest.approx(1, abs=1e-3)


def test_missing_data_offline_is_one_clear_paragraph(tmp_path, monkeypatch):
    from torchvision import datasets

    # No internet in tests: point the mirrors at a closed local port so the download fails at once.
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(dl_utils.CourseError) as caught:
        dl_utils.load_mnist_data(tmp_path / "empty")
    message = str(caught.value)
    assert "--data-dir" in message and str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert all(name in message for name in dl_utils.MNIST_FILES)
    assert "\n" not in message


# --------------------------------------------------------------------------- training and evaluation
def test_train_epoch_lowers_the_loss(tiny_mnist, SimpleNN):
    dl_utils.set_seed(0)
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    model, loss_fn = SimpleNN(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = dl_utils.evaluate_model(model, data.train_loader, loss_fn=loss_fn)
    metrics = [dl_utils.train_epoch(model, data.train_loader, loss_fn=loss_fn, optimizer=optimizer)
               for _ in range(3)]
    after = dl_utils.evaluate_model(model, data.train_loader, loss_fn=loss_fn)
    assert after["loss"] < 0.5 * before["loss"]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics[-1]["accuracy"] > 0.8  # chance is 0.1: it learned, and the accuracy is a fraction


def test_train_epoch_matches_a_hand_written_loop(tiny_mnist, SimpleNN):
    """Same weights, same batches: our loop must give the same weights as the textbook five steps."""
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=50, seed=1)
    dl_utils.set_seed(0)
    ours, theirs = SimpleNN(), SimpleNN()
    theirs.load_state_dict(ours.state_dict())
    loss_fn = nn.CrossEntropyLoss()
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    batches = list(data.train_loader)  # one epoch's order, recorded
    data.train_loader.generator.manual_seed(1)  # replay the same order for train_epoch
    dl_utils.train_epoch(ours, data.train_loader, loss_fn=loss_fn, optimizer=opt_ours)
    theirs.train()
    for images, labels in batches:
        opt_theirs.zero_grad()
        loss_fn(theirs(images), labels).backward()
        opt_theirs.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)


def test_evaluate_model_equals_a_hand_count(tiny_mnist, SimpleNN):
    data = dl_utils.load_mnist_data(tiny_mnist)
    dl_utils.set_seed(0)
    model = SimpleNN()
    result = dl_utils.evaluate_model(model, data.test_loader, loss_fn=nn.CrossEntropyLoss(reduction="mean"))
    images, labels = data.test_loader.images, data.test_loader.labels
    with torch.no_grad():
        logits = model(images)
    correct = sum(int(logits[i].argmax() == labels[i]) for i in range(len(labels)))
    assert result["accuracy"] == correct / len(labels)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert not model.training  # evaluate_model leaves the model in eval mode


def test_nan_loss_stops_with_a_lesson(tiny_mnist, SimpleNN):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    dl_utils.set_seed(0)
    model = SimpleNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)  # absurd on purpose
    with pytest.raises(dl_utils.CourseError, match="learning rate"):
        for _ in range(3):
            dl_utils.train_epoch(model, data.train_loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer)


def test_early_stopping_restores_the_best_weights(SimpleNN):
    # Random labels: the model can only memorise the training set, so the
    # validation loss soon rises - textbook overfitting, and early stopping's cue.
    generator = torch.Generator().manual_seed(0)
    def random_loader(n, shuffle):
        images = torch.randn(n, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        return dl_utils.InMemoryLoader(images, labels, batch_size=32, shuffle=shuffle)
    train_loader, val_loader = random_loader(256, True), random_loader(256, False)
    dl_utils.set_seed(0)
    model = SimpleNN()
    lines = []
    history = dl_utils.train_model(model, train_loader, val_loader, loss_fn=nn.CrossEntropyLoss(),
                                   optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                                   epochs=20, patience=2, log=lines.append)
    best = history["best_epoch"]
    assert history["stopped_early"] and len(history["epoch"]) == best + 2 < 20
    assert history["val_loss"][best - 1] == min(history["val_loss"])
    assert any("Early stopping" in line for line in lines)
    # The weights we keep are the best epoch's: re-evaluating reproduces its validation loss.
    again = dl_utils.evaluate_model(model, val_loader, loss_fn=nn.CrossEntropyLoss())
    assert again["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-5)
    assert again["loss"] < history["val_loss"][-1]


def test_count_parameters_simple_nn(SimpleNN):
    assert dl_utils.count_parameters(SimpleNN()) == 101_770  # (784*128 + 128) + (128*10 + 10)
    assert dl_utils.count_parameters(SimpleNN(hidden=32)) == 784 * 32 + 32 + 32 * 10 + 10
    assert dl_utils.count_parameters(nn.BatchNorm1d(5)) == 10  # weight + bias; running stats are buffers


# --------------------------------------------------------------------------- saving
def _save(path, model):
    return dl_utils.save_checkpoint(path, model=model, arch="SimpleNN", model_config={"hidden": 128},
                                    hyperparameters={"lr": 1e-3}, metrics={"test_accuracy": 0.5},
                                    normalization={"mean": 0.1, "std": 0.3})


def test_checkpoint_round_trip(tmp_path, SimpleNN):
    model = SimpleNN()
    path = _save(tmp_path / "m.pth", model)
    checkpoint = dl_utils.load_checkpoint(path)
    assert checkpoint["arch"] == "SimpleNN" and checkpoint["model_config"] == {"hidden": 128}
    assert checkpoint["normalization"] == {"mean": 0.1, "std": 0.3}
    assert checkpoint["torch_version"] == str(torch.__version__)
    restored = SimpleNN()
    restored.load_state_dict(checkpoint["state_dict"])
    for a, b in zip(model.state_dict().values(), restored.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch, SimpleNN):
    path = _save(tmp_path / "m.pth", SimpleNN())
    good = path.read_bytes()

    def interrupted_save(obj, f):  # writes half a file, then Ctrl-C
        open(f, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        _save(path, SimpleNN())
    assert path.read_bytes() == good  # the old checkpoint survived intact
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file was left behind


def test_bad_checkpoints_are_clear_errors(tmp_path, SimpleNN):
    with pytest.raises(dl_utils.CourseError, match="03_train_mnist.py"):
        dl_utils.load_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(dl_utils.CourseError, match="not a readable PyTorch checkpoint"):
        dl_utils.load_checkpoint(tmp_path / "garbage.pth")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(dl_utils.CourseError, match="not a course checkpoint"):
        dl_utils.load_checkpoint(tmp_path / "foreign.pth")
    torch.save(SimpleNN(), tmp_path / "whole.pth")  # a whole pickled model
    with pytest.raises(dl_utils.CourseError, match="weights_only=False"):
        dl_utils.load_checkpoint(tmp_path / "whole.pth")


def test_state_dict_mismatches_names_both_shapes(SimpleNN):
    assert dl_utils.state_dict_mismatches(SimpleNN(), SimpleNN().state_dict()) == []
    lines = dl_utils.state_dict_mismatches(SimpleNN(hidden=64), SimpleNN(hidden=128).state_dict())
    assert "fc1.weight: saved (128, 784), your model (64, 784)" in lines
    lines = dl_utils.state_dict_mismatches(SimpleNN(batch_norm=True), SimpleNN().state_dict())
    assert any(line.startswith("norm.weight: in your model") for line in lines)


def test_experiment_log_appends_and_grows_columns(tmp_path):
    base = {"date": "2026-01-01T00:00:00", "script": "s", "parameters": 10, "best_val_accuracy": 0.5,
            "test_accuracy": 0.25, "train_seconds": 1.23456, "device": "cpu"}
    dl_utils.log_experiment(tmp_path, {**base, "hyperparameters": {"lr": 0.1}})
    path = dl_utils.log_experiment(tmp_path, {**base, "hyperparameters": {"lr": 0.2, "hidden": 64}})
    rows = list(csv.DictReader(path.open()))
    assert [row["lr"] for row in rows] == ["0.1", "0.2"]
    assert rows[0]["hidden"] == "" and rows[1]["hidden"] == "64"
    assert rows[1]["train_seconds"] == "1.2346" and rows[1]["test_accuracy"] == "0.25"


def test_training_history_plot_is_a_png(tmp_path):
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
               "train_accuracy": [0.5, 0.8], "val_accuracy": [0.45, 0.7]}
    path = dl_utils.plot_training_history(history, tmp_path / "h.png")
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 800
    assert math.isclose(float(image.std()), 0.0) is False  # not a blank canvas
