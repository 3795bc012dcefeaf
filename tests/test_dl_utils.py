"""Unit tests for dl_utils.py (and the course/cli.py it re-exports), on the tiny synthetic MNIST (see conftest.py)."""

import argparse
import csv
import math

import pytest
import torch
from torch import nn

import dl_utils
from conftest import N_TEST, N_TRAIN
from course import cli

SimpleNN = dl_utils.SimpleNN  # 03's class, harvested (tests/test_toolbox.py checks the copy is identical)


# --------------------------------------------------------------------------- settings -> flags
@pytest.mark.parametrize("check, text", [
    (dl_utils.positive_int, "0"), (dl_utils.positive_int, "-3"), (dl_utils.positive_int, "2.5"),
    (cli.non_negative_int, "-1"), (cli.non_negative_int, "1.5"), (cli.non_negative_int, "none"),
    (dl_utils.positive_float, "0"), (dl_utils.positive_float, "-1e-3"), (dl_utils.positive_float, "nan"),
    (dl_utils.positive_float, "inf"), (dl_utils.positive_float, "abc"),
    (dl_utils.fraction, "1"), (dl_utils.fraction, "-0.1"), (dl_utils.fraction, "half"),
])
def test_argument_types_reject_bad_values(check, text):
    with pytest.raises(argparse.ArgumentTypeError):
        check(text)


def test_argument_types_accept_good_values():
    assert dl_utils.positive_int("12") == 12
    assert cli.non_negative_int("0") == 0 and cli.non_negative_int("7") == 7
    assert dl_utils.positive_float("1e-3") == 0.001 and dl_utils.positive_float("2.5") == 2.5
    assert dl_utils.fraction("0.2") == 0.2 and dl_utils.fraction("0") == 0.0


# A lesson's settings block, as a learner reads it: each flag's --help is the comment beside it.
LESSON = '''"""A lesson."""
import math

HIDDEN = 128  # neurons in the hidden layer
EPOCHS = 10  # passes over the training images
LR = 1e-3  # Adam's usual start; 100% of the lessons use it
PATIENCE = 0  # early stopping (0 = off)
DROPOUT = 0.0  # chance of zeroing each hidden neuron
MOMENTUM = 0.5  # sgd only
FUSED = True  # one kernel
BATCH_NORM = False  # normalise the hidden layer
OPTIMIZER = "adam"  # the update rule
WIDTHS = (32, 16)  # one hidden layer per number
SUBSET = 0  # train on the first N images (0 = all)
CHOICES = {"OPTIMIZER": ("adam", "sgd")}  # a dict: not a setting
_PRIVATE = 3  # starts with _: not a setting
lowercase = 5  # lowercase: not a setting
'''
NAMES = ["HIDDEN", "EPOCHS", "LR", "PATIENCE", "DROPOUT", "MOMENTUM", "FUSED", "BATCH_NORM", "OPTIMIZER", "WIDTHS",
         "SUBSET"]


@pytest.fixture()
def lesson(tmp_path):
    """(settings, source path) of the lesson above, collected the way a lesson does it."""
    source = tmp_path / "lesson.py"
    source.write_text(LESSON, encoding="utf-8")
    namespace = {}
    exec(compile(LESSON, str(source), "exec"), namespace)
    return dl_utils.collect_settings(namespace), source


def parser_for(lesson, drop=(), **kwargs):
    settings, source = lesson
    settings = {name: value for name, value in settings.items() if name not in drop}
    kwargs.setdefault("choices", {"OPTIMIZER": ("adam", "sgd")})
    return dl_utils.build_parser("A lesson.", settings, source=str(source), **kwargs)


def usage_error(parser, argv, capsys) -> str:
    with pytest.raises(SystemExit) as caught:
        dl_utils.parse_args(parser, argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_collect_settings_takes_the_uppercase_plain_values_in_file_order(lesson):
    settings, _ = lesson
    assert list(settings) == NAMES  # no dict, no _private, no lowercase, no module
    assert settings["LR"] == 1e-3 and settings["WIDTHS"] == (32, 16)


def test_every_setting_becomes_a_flag_with_its_default(lesson, tmp_path):
    args = dl_utils.parse_args(parser_for(lesson), ["--out-dir", str(tmp_path)])
    assert (args.hidden, args.epochs, args.lr, args.patience, args.dropout, args.momentum) == (128, 10, 1e-3, 0, 0.0, 0.5)
    assert (args.fused, args.batch_norm, args.optimizer, args.widths, args.subset) == (True, False, "adam", [32, 16], 0)
    # the plumbing every lesson gets
    assert (args.data_dir, args.out_dir, args.device, args.show, args.quick) == (None, tmp_path, "auto", False, False)


def test_bools_get_a_yes_and_a_no_flag(lesson, tmp_path):
    parser = parser_for(lesson)
    args = dl_utils.parse_args(parser, ["--no-fused", "--batch-norm", "--out-dir", str(tmp_path)])
    assert args.fused is False and args.batch_norm is True  # BATCH_NORM -> --batch-norm
    assert dl_utils.parse_args(parser, ["--no-batch-norm", "--fused", "--out-dir", str(tmp_path)]).batch_norm is False


def test_numbers_are_checked_by_their_name_not_their_default(lesson, tmp_path, capsys):
    parser = parser_for(lesson)
    out = ["--out-dir", str(tmp_path)]
    # names the course knows have their own check (course.cli.CHECKS); any other number may be 0 or more
    assert dl_utils.parse_args(parser, ["--patience", "0", "--subset", "0", *out]).patience == 0
    assert "must be 0 or more" in usage_error(parser, ["--patience", "-1", *out], capsys)
    assert "must be a positive whole number" in usage_error(parser, ["--epochs", "0", *out], capsys)
    assert "must be a positive whole number" in usage_error(parser, ["--hidden", "-5", *out], capsys)
    assert dl_utils.parse_args(parser, ["--dropout", "0", *out]).dropout == 0.0
    assert "below 1" in usage_error(parser, ["--dropout", "1", *out], capsys)
    assert "below 1" in usage_error(parser, ["--momentum", "3", *out], capsys)
    assert dl_utils.parse_args(parser, ["--lr", "2", *out]).lr == 2.0
    assert "must be a positive number" in usage_error(parser, ["--lr", "0", *out], capsys)
    # lists take several values, each checked
    assert dl_utils.parse_args(parser, ["--widths", "64", "0", "8", *out]).widths == [64, 0, 8]
    assert "must be 0 or more" in usage_error(parser, ["--widths", "64", "-1", *out], capsys)


def test_editing_a_default_does_not_change_what_its_flag_accepts(lesson, tmp_path, capsys):
    """A learner who sets DROPOUT = 0.2 or PATIENCE = 3 at the top can still pass --dropout 0 or --patience 0."""
    settings, source = lesson
    edited = {**settings, "DROPOUT": 0.2, "PATIENCE": 3, "MOMENTUM": 0.9}
    parser = dl_utils.build_parser("A lesson.", edited, source=str(source), choices={"OPTIMIZER": ("adam", "sgd")})
    args = dl_utils.parse_args(parser, ["--dropout", "0", "--patience", "0", "--momentum", "0", "--out-dir", str(tmp_path)])
    assert (args.dropout, args.patience, args.momentum) == (0.0, 0, 0.0)
    assert "below 1" in usage_error(parser, ["--dropout", "1.5", "--out-dir", str(tmp_path)], capsys)


def test_choices_and_type_overrides(lesson, tmp_path, capsys):
    out = ["--out-dir", str(tmp_path)]
    parser = parser_for(lesson)
    assert dl_utils.parse_args(parser, ["--optimizer", "sgd", *out]).optimizer == "sgd"
    assert "invalid choice: 'rmsprop'" in usage_error(parser, ["--optimizer", "rmsprop", *out], capsys)
    assert dl_utils.parse_args(parser_for(lesson, choices={}), ["--optimizer", "rmsprop", *out]).optimizer == "rmsprop"
    overridden = parser_for(lesson, types={"LR": float})
    assert dl_utils.parse_args(overridden, ["--lr", "0", *out]).lr == 0.0


def help_of(parser, flag: str) -> str:
    """The --help entry of one flag, its lines joined (argparse wraps long help texts)."""
    lines = parser.format_help().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " ") or line.strip() == flag
                 or line.strip().startswith(flag + ","))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-")), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


def test_each_comment_becomes_the_help_text_with_the_default(lesson):
    parser = parser_for(lesson)
    assert "neurons in the hidden layer (default: 128)" in help_of(parser, "--hidden")
    assert "100% of the lessons use it (default: 0.001)" in help_of(parser, "--lr")  # a % in a comment is kept
    assert "early stopping (0 = off) (default: 0)" in help_of(parser, "--patience")
    assert "{adam,sgd}" in help_of(parser, "--optimizer")
    assert "--no-fused" in help_of(parser, "--fused") and "one kernel" in help_of(parser, "--fused")


def test_quick_means_one_epoch_on_a_subset(lesson, tmp_path, capsys):
    out = ["--out-dir", str(tmp_path)]
    parser = parser_for(lesson)
    args = dl_utils.parse_args(parser, ["--quick", *out])
    assert (args.epochs, args.subset) == (1, dl_utils.QUICK_SUBSET)
    assert dl_utils.parse_args(parser, ["--quick", "--subset", "300", *out]).subset == 300  # an explicit subset wins
    assert (dl_utils.parse_args(parser, out).epochs, dl_utils.parse_args(parser, out).subset) == (10, 0)
    # a lesson without SUBSET: --quick still means 1 epoch
    args = dl_utils.parse_args(parser_for(lesson, drop=("SUBSET",)), ["--quick", *out])
    assert args.epochs == 1 and not hasattr(args, "subset")
    # a lesson that trains nothing (no EPOCHS) has no --quick
    assert "unrecognized arguments: --quick" in usage_error(parser_for(lesson, drop=("EPOCHS",)), ["--quick", *out],
                                                            capsys)


def test_recorded_settings_leave_out_paths_and_display_switches(lesson, tmp_path):
    parser = parser_for(lesson)
    args = dl_utils.parse_args(parser, ["--quick", "--show", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path)])
    config = dl_utils.settings_from_args(args)
    assert set(config) == {name.lower() for name in NAMES} | {"device"}
    assert config["epochs"] == 1 and config["widths"] == [32, 16]  # what the run used, after --quick


def test_changed_settings_names_what_differs_from_the_defaults(lesson, tmp_path):
    parser = parser_for(lesson)
    out = ["--out-dir", str(tmp_path)]
    assert dl_utils.changed_settings(parser, dl_utils.parse_args(parser, out)) == "defaults"
    args = dl_utils.parse_args(parser, ["--hidden", "32", "--lr", "0.01", "--batch-norm", "--device", "cpu", *out])
    assert dl_utils.changed_settings(parser, args) == "hidden 32, lr 0.01, batch norm"


# --------------------------------------------------------------------------- device and seeds
def test_device_auto_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cli, "_mps_available", lambda: False)
    device, why = dl_utils.get_device("auto")
    assert device.type == "cpu" and "CPU" in why


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_asking_for_a_missing_device_is_a_clear_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cli, "_mps_available", lambda: False)
    with pytest.raises(dl_utils.CourseError, match="--device auto"):
        dl_utils.get_device(name)


def test_same_seed_same_numbers_different_seed_different_numbers():
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
    assert data.normalization == {"mean": data.mean, "std": data.std}


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


# --------------------------------------------------------------------------- training and evaluation (written in 03)
def test_train_one_epoch_lowers_the_loss(tiny_mnist):
    dl_utils.set_seed(0)
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    model, loss_fn = SimpleNN(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = dl_utils.evaluate(model, data.train_loader, loss_fn)
    metrics = [dl_utils.train_one_epoch(model, data.train_loader, loss_fn, optimizer) for _ in range(3)]
    after = dl_utils.evaluate(model, data.train_loader, loss_fn)
    assert after["loss"] < 0.5 * before["loss"]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics[-1]["accuracy"] > 0.8  # chance is 0.1: it learned, and the accuracy is a fraction


def test_train_one_epoch_matches_a_hand_written_loop(tiny_mnist):
    """Same weights, same batches: our loop must give the textbook five steps' weights, mean loss and accuracy."""
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=64, seed=1)  # 550 = 8 x 64 + 38
    dl_utils.set_seed(0)
    ours, theirs = SimpleNN(), SimpleNN()
    theirs.load_state_dict(ours.state_dict())
    loss_fn = nn.CrossEntropyLoss()
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    batches = list(data.train_loader)  # one epoch's order, recorded
    data.train_loader.generator.manual_seed(1)  # replay the same order for train_one_epoch
    result = dl_utils.train_one_epoch(ours, data.train_loader, loss_fn, opt_ours)
    theirs.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in batches:
        opt_theirs.zero_grad()
        logits = theirs(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        opt_theirs.step()
        loss_sum += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)
    assert len(batches) == 9 and len(batches[-1][1]) == 38  # a partial last batch: the mean must be per image
    assert result["loss"] == pytest.approx(loss_sum / seen, rel=1e-5)
    assert result["accuracy"] == correct / seen


def test_evaluate_equals_a_hand_count_and_trains_nothing(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist)
    dl_utils.set_seed(0)
    model = SimpleNN(dropout=0.5)  # dropout must be off while evaluating
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    result = dl_utils.evaluate(model, data.test_loader, nn.CrossEntropyLoss())
    images, labels = data.test_loader.images, data.test_loader.labels
    model.eval()
    with torch.no_grad():
        logits = model(images)
    correct = sum(int(logits[i].argmax() == labels[i]) for i in range(len(labels)))
    assert result["accuracy"] == correct / len(labels)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert not model.training  # evaluate leaves the model in eval mode
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    model.train()  # even when called on a model left in training mode, dropout is switched off:
    assert dl_utils.evaluate(model, data.test_loader, nn.CrossEntropyLoss()) == result


def random_label_loaders():
    """Random labels: a model can only memorise the training set, so the validation loss soon rises."""
    generator = torch.Generator().manual_seed(0)

    def random_loader(n, shuffle):
        images = torch.randn(n, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        return dl_utils.InMemoryLoader(images, labels, batch_size=32, shuffle=shuffle)

    return random_loader(256, True), random_loader(256, False)


def test_fit_stops_early_and_restores_the_best_weights(capsys):
    train_loader, val_loader = random_label_loaders()  # textbook overfitting: early stopping's cue
    dl_utils.set_seed(0)
    model = SimpleNN()
    history = dl_utils.fit(model, train_loader, val_loader, nn.CrossEntropyLoss(),
                           torch.optim.Adam(model.parameters(), lr=1e-3), epochs=20, patience=2)
    best = history["best_epoch"]
    assert history["stopped_early"] and len(history["epoch"]) == best + 2 < 20
    assert history["val_loss"][best - 1] == min(history["val_loss"])
    assert "Early stopping" in capsys.readouterr().out
    # The weights we keep are the best epoch's: re-evaluating reproduces its validation loss.
    again = dl_utils.evaluate(model, val_loader, nn.CrossEntropyLoss())
    assert again["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-5)
    assert again["loss"] < history["val_loss"][-1]


def test_fit_without_patience_runs_every_epoch_and_keeps_the_last_weights(capsys):
    train_loader, val_loader = random_label_loaders()
    dl_utils.set_seed(0)
    model = SimpleNN()
    history = dl_utils.fit(model, train_loader, val_loader, nn.CrossEntropyLoss(),
                           torch.optim.Adam(model.parameters(), lr=1e-3), epochs=6)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6] and not history["stopped_early"]
    assert all(len(history[key]) == 6 for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"))
    assert history["val_loss"][history["best_epoch"] - 1] == min(history["val_loss"])
    assert history["best_epoch"] < 6  # it overfits, and yet, without patience, the last weights stay:
    assert dl_utils.evaluate(model, val_loader, nn.CrossEntropyLoss())["loss"] == pytest.approx(history["val_loss"][-1],
                                                                                                rel=1e-5)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 6 and lines[0].startswith("Epoch 1/6: train loss ")  # one line per epoch


def test_fit_trains_with_the_epoch_function_it_is_given(tiny_mnist, capsys):
    """06 passes its own epoch (with a scheduler step): fit must call it, once per epoch."""
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=100, subset=200)
    model = SimpleNN(hidden=8)
    calls = []

    def my_epoch(model, loader, loss_fn, optimizer):
        calls.append(loader)
        return dl_utils.train_one_epoch(model, loader, loss_fn, optimizer)

    dl_utils.fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(),
                 torch.optim.SGD(model.parameters(), lr=0.1), epochs=3, train_epoch=my_epoch)
    assert calls == [data.train_loader] * 3


def test_nan_loss_stops_with_a_lesson(tiny_mnist, capsys):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    dl_utils.set_seed(0)
    model = SimpleNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)  # absurd on purpose
    with pytest.raises(dl_utils.CourseError, match=r"learning rate.*lr=1e\+30") as caught:
        dl_utils.fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(), optimizer, epochs=5)
    assert "epoch 1" in str(caught.value) and "\n" not in str(caught.value)


def test_collect_predictions_gives_probabilities_in_order(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist)
    dl_utils.set_seed(0)
    model = SimpleNN()
    probs, labels = dl_utils.collect_predictions(model, data.test_loader)
    assert probs.shape == (N_TEST, 10) and torch.equal(labels, data.test_loader.labels)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(N_TEST))
    with torch.no_grad():
        torch.testing.assert_close(probs, torch.softmax(model(data.test_loader.images), dim=1))


def test_count_parameters_simple_nn():
    assert dl_utils.count_parameters(SimpleNN()) == 101_770  # (784*128 + 128) + (128*10 + 10)
    assert dl_utils.count_parameters(SimpleNN(hidden=32)) == 784 * 32 + 32 + 32 * 10 + 10
    assert dl_utils.count_parameters(nn.BatchNorm1d(5)) == 10  # weight + bias; running stats are buffers


def test_simple_nn_builds_only_the_layers_that_do_something():
    plain = str(SimpleNN())
    assert "Identity" not in plain and "Dropout" not in plain and "BatchNorm" not in plain
    full = str(SimpleNN(dropout=0.2, batch_norm=True))
    assert "BatchNorm1d(128" in full and "Dropout(p=0.2" in full


# --------------------------------------------------------------------------- saving
def _save(path, model):
    return dl_utils.save_checkpoint(path, model=model, arch="SimpleNN", model_config={"hidden": 128},
                                    hyperparameters={"lr": 1e-3}, metrics={"test_accuracy": 0.5},
                                    normalization={"mean": 0.1, "std": 0.3})


def test_checkpoint_round_trip(tmp_path):
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


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
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


def test_bad_checkpoints_are_clear_errors(tmp_path):
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


def test_state_dict_mismatches_names_both_shapes():
    assert dl_utils.state_dict_mismatches(SimpleNN(), SimpleNN().state_dict()) == []
    lines = dl_utils.state_dict_mismatches(SimpleNN(hidden=64), SimpleNN(hidden=128).state_dict())
    assert "fc1.weight: saved (128, 784), your model (64, 784)" in lines
    lines = dl_utils.state_dict_mismatches(SimpleNN(batch_norm=True), SimpleNN().state_dict())
    assert any(line.startswith("norm.weight: in your model") for line in lines)
    lines = dl_utils.state_dict_mismatches(SimpleNN(), SimpleNN(batch_norm=True).state_dict())
    assert any(line.startswith("norm.running_mean: in the checkpoint") for line in lines)


def test_build_model_reads_the_architecture_from_the_checkpoint(tmp_path):
    saved = SimpleNN(hidden=16, batch_norm=True)
    dl_utils.save_checkpoint(tmp_path / "m.pth", model=saved, arch="SimpleNN",
                             model_config={"hidden": 16, "dropout": 0.0, "batch_norm": True},
                             hyperparameters={}, metrics={}, normalization={"mean": 0.1, "std": 0.3})
    checkpoint = dl_utils.load_checkpoint(tmp_path / "m.pth")
    model = dl_utils.build_model(checkpoint)
    assert type(model) is SimpleNN and model.fc1.out_features == 16 and model.norm is not None
    model.load_state_dict(checkpoint["state_dict"])  # fits exactly
    cnn = dl_utils.build_model({"arch": "CNN", "model_config": {"dropout": 0.5}})
    assert type(cnn) is dl_utils.CNN and cnn.dropout.p == 0.5
    with pytest.raises(dl_utils.CourseError, match="'ResNet'"):
        dl_utils.build_model({"arch": "ResNet", "model_config": {}})


def test_experiment_log_appends_and_grows_columns(tmp_path):
    base = {"date": "2026-01-01T00:00:00", "script": "s", "parameters": 10, "best_val_accuracy": 0.5,
            "test_accuracy": 0.25, "train_seconds": 1.23456, "device": "cpu"}
    dl_utils.log_experiment(tmp_path, {**base, "hyperparameters": {"lr": 0.1}})
    path = dl_utils.log_experiment(tmp_path, {**base, "hyperparameters": {"lr": 0.2, "hidden": 64}})
    rows = list(csv.DictReader(path.open()))
    assert [row["lr"] for row in rows] == ["0.1", "0.2"]
    assert rows[0]["hidden"] == "" and rows[1]["hidden"] == "64"
    assert rows[1]["train_seconds"] == "1.2346" and rows[1]["test_accuracy"] == "0.25"
    dl_utils.log_experiment(tmp_path, {**base, "final_val_accuracy": 0.45, "hyperparameters": {"lr": 0.3}})
    rows = list(csv.DictReader(path.open()))  # the last epoch's: the number the lessons print
    assert rows[2]["final_val_accuracy"] == "0.45" and rows[0]["final_val_accuracy"] == ""


def test_training_history_plot_is_a_png(tmp_path):
    history = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.8],
               "train_accuracy": [0.5, 0.8, 0.85], "val_accuracy": [0.45, 0.7, 0.68],
               "best_epoch": 2, "stopped_early": True}
    path = dl_utils.plot_training_history(history, tmp_path / "h.png")
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 800
    assert math.isclose(float(image.std()), 0.0) is False  # not a blank canvas
