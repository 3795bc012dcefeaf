"""Smoke and bad-input tests for 03_train_mnist.py and 04_load_model.py on the tiny synthetic MNIST."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

import dl_utils
from conftest import REPO, assert_png, learner_photo, load_script

train = load_script("03_train_mnist")
load = load_script("04_load_model")


@pytest.fixture(scope="module")
def trained(tiny_mnist, tmp_path_factory):
    """One quick 03 run shared by the tests below: (out_dir, results)."""
    out = tmp_path_factory.mktemp("out03")
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--epochs", "2"])
    return out, results


def test_03_writes_everything_and_learns(trained):
    out, results = trained
    assert results["test_accuracy"] > 0.5  # chance is 0.1
    assert results["parameters"] == 101_770
    assert len(results["history"]["val_accuracy"]) == 2 and results["epochs_run"] == 2
    saved = json.loads((out / "03_train_mnist.json").read_text())
    for key in ("test_accuracy", "best_val_accuracy", "final_val_accuracy", "train_seconds", "device",
                "parameters", "hyperparameters", "history", "epochs_run"):
        assert key in saved
    assert saved["test_accuracy"] == results["test_accuracy"]
    assert saved["hyperparameters"]["lr"] == train.LEARNING_RATE
    checkpoint = dl_utils.load_checkpoint(out / "mnist_model.pth")
    assert checkpoint["metrics"]["test_accuracy"] == results["test_accuracy"]
    assert checkpoint["model_config"]["hidden"] == train.HIDDEN
    assert_png(out / "training_history.png")
    rows = list(csv.DictReader((out / "experiments.csv").open()))
    assert rows[-1]["script"] == "03_train_mnist" and float(rows[-1]["test_accuracy"]) == pytest.approx(
        results["test_accuracy"], abs=1e-4)


def test_04_reproduces_03_exactly(trained, tiny_mnist):
    out, results = trained
    reloaded = load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out)])
    assert reloaded["test_accuracy"] == results["test_accuracy"]
    assert reloaded["identical_to_checkpoint"] is True
    assert "size mismatch for fc1.weight" in reloaded["architecture_mismatch_error"]
    saved = json.loads((out / "04_load_model.json").read_text())
    assert saved["test_accuracy"] == results["test_accuracy"]
    # every flag is recorded as parsed, so a new flag can never be left out of the results
    assert set(saved["settings"]) == set(dl_utils.settings_from_args(load.build_parser().parse_args([])))
    assert saved["settings"]["hidden"] == load.HIDDEN and saved["settings"]["draw"] is False
    assert_png(out / "predictions.png")


def test_03_flags_change_the_model(tiny_mnist, tmp_path):
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "1",
                          "--hidden", "32", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05",
                          "--dropout", "0.2", "--batch-norm", "--subset", "300"])
    assert results["parameters"] == 784 * 32 + 32 + 2 * 32 + 32 * 10 + 10  # + batch norm's weight and bias
    assert results["hyperparameters"]["optimizer"] == "sgd"
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    assert checkpoint["model_config"] == {"hidden": 32, "dropout": 0.2, "batch_norm": True}
    assert "norm.running_mean" in checkpoint["state_dict"]


def test_04_explains_an_architecture_mismatch(tiny_mnist, tmp_path):
    train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--hidden", "32"])
    with pytest.raises(dl_utils.CourseError) as caught:
        load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path)])
    message = str(caught.value)
    assert "hidden=32" in message and "--hidden 32" in message
    assert "fc1.weight: saved (32, 784), your model (128, 784)" in message
    # ... and following the advice works:
    assert load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--hidden", "32"])[
        "identical_to_checkpoint"]


@pytest.mark.parametrize("arch, expected", [("ResNet", "holds a ResNet model"),
                                            ("CNN", "does not fit the CNN class")])
def test_04_refuses_other_architectures(tmp_path, arch, expected):
    model = torch.nn.Linear(2, 2)  # weights that fit neither SimpleNN nor 06's CNN
    dl_utils.save_checkpoint(tmp_path / "other.pth", model=model, arch=arch, model_config={},
                             hyperparameters={}, metrics={}, normalization={"mean": 0.1, "std": 0.3})
    with pytest.raises(dl_utils.CourseError, match=expected):
        load.main(["--model", str(tmp_path / "other.pth"), "--out-dir", str(tmp_path)])


@pytest.mark.parametrize("content, expected", [
    (None, "run `python 03_train_mnist.py` first"),
    (b"\x00\x01 this is no checkpoint", "not a readable PyTorch checkpoint"),
])
def test_04_missing_or_corrupt_checkpoint(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "mnist_model.pth").write_bytes(content)
    with pytest.raises(dl_utils.CourseError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load.main(["--out-dir", str(tmp_path)])


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--batch-size", "-64"], ["--lr", "0"],
                                   ["--lr", "fast"], ["--device", "tpu"], ["--dropout", "1.5"]])
def test_03_rejects_bad_flag_values(flags, capsys):
    with pytest.raises(SystemExit) as caught:
        train.main(flags)
    assert caught.value.code == 2  # argparse's "usage error" status
    assert "error: argument" in capsys.readouterr().err


def test_03_momentum_needs_sgd():
    with pytest.raises(dl_utils.CourseError, match="--optimizer sgd"):
        train.main(["--momentum", "0.9"])


def _run(script, *flags):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": ""}
    env.pop("DL_DATA_DIR", None)
    return subprocess.run([sys.executable, str(REPO / script), *flags], capture_output=True, text=True,
                          env=env, timeout=120)


def test_bad_input_in_a_real_process_prints_a_paragraph_not_a_traceback(tmp_path):
    """What the learner sees in the terminal: one message, exit status non-zero, no traceback."""
    missing = _run("04_load_model.py", "--out-dir", str(tmp_path), "--device", "cpu")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr and "03_train_mnist.py" in missing.stderr

    bad_flag = _run("03_train_mnist.py", "--epochs", "0")
    assert bad_flag.returncode == 2
    assert "Traceback" not in bad_flag.stderr and "must be a positive whole number" in bad_flag.stderr


def test_04_reads_your_own_digit_and_rejects_a_non_image(trained, tiny_mnist, tmp_path):
    out, _ = trained
    learner_photo(dl_utils.load_mnist_data(tiny_mnist), 3, tmp_path / "d.jpg", size=200, mode="RGB")
    results = load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--image", str(tmp_path / "d.jpg")])
    # What 04 reports is what the saved model says about the prepared picture, with the saved normalisation
    # (a wrong model, normalisation or preprocessing gives another answer or confidence):
    checkpoint = dl_utils.load_checkpoint(out / "mnist_model.pth")
    model = load.build_model(checkpoint, **{k: checkpoint["model_config"][k] for k in ("hidden", "batch_norm")})
    model.load_state_dict(checkpoint["state_dict"])
    _, _, tensor = dl_utils.prepare_digit_image(tmp_path / "d.jpg", **checkpoint["normalization"])
    expected = dl_utils.predict_digit(model, tensor)
    assert results["image_prediction"] == int(expected.argmax())
    assert results["image_confidence"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert (out / "own_digit.png").stat().st_size > 10_000
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(dl_utils.CourseError):
        load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--image", str(tmp_path / "notes.png")])


def test_04_checks_your_picture_before_the_test_set(trained, tiny_mnist, tmp_path):
    """A typo in --image is reported at once: nothing else (predictions.png) gets done first."""
    out, _ = trained
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(dl_utils.CourseError, match="not a picture"):
        load.main(["--data-dir", str(tiny_mnist), "--model", str(out / "mnist_model.pth"), "--out-dir", str(tmp_path),
                   "--image", str(tmp_path / "notes.png")])
    assert not (tmp_path / "predictions.png").exists()


def test_04_shows_a_shuffled_pixels_model_the_same_shuffle(tiny_mnist, tmp_path):
    """A model trained with --pixels shuffled reloads to its own accuracy; natural pixels would give another."""
    common = ["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu"]
    trained = train.main(common + ["--epochs", "2", "--pixels", "shuffled"])
    reloaded = load.main(common)
    assert reloaded["test_accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    # the check can fail: the same weights on unshuffled test digits score differently
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    model = load.build_model(checkpoint, hidden=128, batch_norm=False)
    model.load_state_dict(checkpoint["state_dict"])
    natural = dl_utils.load_mnist_data(tiny_mnist, normalization=checkpoint["normalization"])
    unshuffled = dl_utils.evaluate_model(model, natural.test_loader, loss_fn=torch.nn.CrossEntropyLoss())
    assert unshuffled["accuracy"] != pytest.approx(trained["test_accuracy"], abs=1e-9)
    (tmp_path / "d.png").write_bytes(b"")
    with pytest.raises(dl_utils.CourseError, match="--pixels shuffled"):
        load.main(common + ["--image", str(tmp_path / "d.png")])


def test_03_fused_adam_reaches_the_optimizer_and_falls_back_where_missing(monkeypatch):
    params = list(train.SimpleNN().parameters())
    assert train.make_optimizer("adam", params, lr=1e-3, momentum=0.0, fused=True).defaults["fused"] is True
    assert not train.make_optimizer("adam", params, lr=1e-3, momentum=0.0).defaults["fused"]
    assert dl_utils.fused_adam_works(torch.device("cpu"))  # torch >= 2.4 (requirements.txt) has it on the CPU

    def no_fused_kernel(*args, fused=False, **kwargs):  # a PyTorch build or device without the fused kernel
        raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")

    monkeypatch.setattr(torch.optim, "Adam", no_fused_kernel)
    assert dl_utils.fused_adam_works(torch.device("cpu")) is False
