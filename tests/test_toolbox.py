"""The toolbox's promises: 03's own loop is the course's loop, settings are
recorded without extra edits, and the edges (Ctrl-C, a bad --out-dir, a damaged
MNIST file, a crash in the learner's code) end with one paragraph."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

import dl_utils
from conftest import REPO, load_script


def _train_weights(train, data, epoch_fn, *, epochs=2):
    torch.manual_seed(0)
    model = train.SimpleNN(hidden=16, dropout=0.2)  # dropout: the random masks must line up too
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data.train_loader.generator.manual_seed(1)  # the same batch order for every run
    history = dl_utils.train_model(model, data.train_loader, data.val_loader, loss_fn=nn.CrossEntropyLoss(),
                                   optimizer=optimizer, epochs=epochs, epoch_fn=epoch_fn, log=None)
    return model.state_dict(), history


def test_03s_loop_gives_the_same_weights_as_dl_utils_train_epoch(tiny_mnist):
    train = load_script("03_train_mnist")
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    ours, ours_history = _train_weights(train, data, train.train_one_epoch)
    theirs, theirs_history = _train_weights(train, data, None)  # None: dl_utils.train_epoch
    assert list(ours) == list(theirs)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert ours_history["train_loss"] == pytest.approx(theirs_history["train_loss"], rel=1e-5)
    assert ours_history["train_accuracy"] == theirs_history["train_accuracy"]


def test_the_weight_comparison_notices_a_broken_loop(tiny_mnist):
    """The test above can fail: a loop that forgets zero_grad ends with other weights."""
    train = load_script("03_train_mnist")
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)

    def no_zero_grad(model, loader, loss_fn, optimizer):
        model.train()
        for images, labels in loader:
            loss_fn(model(images), labels).backward()
            optimizer.step()
        return {"loss": 1.0, "accuracy": 0.0}

    ours, _ = _train_weights(train, data, train.train_one_epoch, epochs=1)
    broken, _ = _train_weights(train, data, no_zero_grad, epochs=1)
    assert not torch.equal(ours["fc1.weight"], broken["fc1.weight"])


def test_a_new_03_flag_is_recorded_everywhere_with_no_other_edit(tiny_mnist, tmp_path, monkeypatch):
    train = load_script("03_train_mnist")
    original = train.build_parser

    def with_a_new_flag():
        parser = original()
        parser.add_argument("--my-new-setting", type=float, default=0.25)
        return parser

    monkeypatch.setattr(train, "build_parser", with_a_new_flag)
    train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--my-new-setting", "0.5"])
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    assert checkpoint["hyperparameters"]["my_new_setting"] == 0.5
    assert json.loads((tmp_path / "03_train_mnist.json").read_text())["hyperparameters"]["my_new_setting"] == 0.5
    header = (tmp_path / "experiments.csv").read_text().splitlines()[0].split(",")
    assert "my_new_setting" in header
    assert "out_dir" not in checkpoint["hyperparameters"]  # paths are not settings


def test_results_record_the_machine(tiny_mnist, tmp_path):
    train = load_script("03_train_mnist")
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick"])
    assert results["cpu"] and results["cpu"] != "unknown"
    assert results["torch_version"] == torch.__version__
    assert results["threads"] == torch.get_num_threads()


def test_out_dir_that_is_a_file_fails_before_reading_any_data(tmp_path, capsys):
    train = load_script("03_train_mnist")
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(dl_utils.CourseError) as error:  # the data dir does not exist either:
        train.main(["--data-dir", str(tmp_path / "nowhere"), "--out-dir", str(not_a_folder)])
    assert "is a file, not a folder" in str(error.value)  # ... the out-dir is checked first
    assert not_a_folder.read_text() == "mine"


def test_a_damaged_mnist_file_is_named_with_its_size(tiny_mnist, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_mnist, root)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    full = images.stat().st_size
    images.write_bytes(images.read_bytes()[:-1000])  # a download cut off
    with pytest.raises(dl_utils.CourseError) as error:
        dl_utils.load_mnist_data(root, download=False)
    message = str(error.value)
    assert str(images) in message and f"{full - 1000:,} bytes" in message and f"{full:,}" in message
    assert "delete that file" in message


def test_read_idx_matches_what_was_written(tiny_mnist):
    from conftest import N_TRAIN, synthetic_digits

    images = dl_utils.read_idx(tiny_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte")
    labels = dl_utils.read_idx(tiny_mnist / "MNIST" / "raw" / "train-labels-idx1-ubyte")
    expected_images, expected_labels = synthetic_digits(N_TRAIN, seed=1)
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.equal(images, torch.from_numpy(expected_images))
    assert torch.equal(labels, torch.from_numpy(expected_labels).long())


def test_subset_larger_than_the_training_split_says_so(tiny_mnist, capsys):
    data = dl_utils.load_mnist_data(tiny_mnist, subset=10**6)
    assert "using all of them" in capsys.readouterr().out
    assert len(data.train_loader.dataset) == 550  # 600 - 600/12 for validation


def test_shuffled_pixels_are_one_fixed_permutation(tiny_mnist):
    natural = dl_utils.load_mnist_data(tiny_mnist)
    shuffled = dl_utils.load_mnist_data(tiny_mnist, pixels="shuffled")
    a, b = natural.test_loader.images.flatten(1), shuffled.test_loader.images.flatten(1)
    assert not torch.equal(a, b)
    # the same permutation for every image: find it from image 0's pixel order, check all
    order = dl_utils.shuffle_pixels(torch.arange(784).reshape(1, 28, 28)).flatten()
    assert torch.equal(a[:, order], b)
    assert sorted(order.tolist()) == list(range(784))


def test_a_crash_in_learner_code_is_one_paragraph(capsys, monkeypatch):
    monkeypatch.delenv("DL_TRACEBACK", raising=False)

    def main():
        images = torch.zeros(4, 784)
        return nn.Linear(28, 10)(images)  # a shape mistake, as a learner might make

    with pytest.raises(SystemExit) as exit_info:
        dl_utils.run(main)
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "RuntimeError" in message and "test_toolbox.py line" in message and "nn.Linear(28, 10)" in message
    assert "Traceback" not in message


def test_ctrl_c_mid_training_exits_130_and_keeps_the_old_checkpoint(tiny_mnist, tmp_path):
    previous = tmp_path / "mnist_model.pth"
    previous.write_bytes(b"the checkpoint of the last finished run")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "03_train_mnist.py"), "--data-dir", str(tiny_mnist), "--out-dir",
         str(tmp_path), "--epochs", "100000", "--hidden", "512"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"})
    for line in process.stdout:  # wait until training is under way
        if line.startswith("Epoch 2/"):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Interrupted during epoch" in err and "Nothing of this run was saved" in err
    assert previous.read_bytes() == b"the checkpoint of the last finished run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist_model.pth"]  # no temp files
