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
    assert saved["hyperparameters"]["lr"] == train.LR and saved["hyperparameters"]["epochs"] == 2
    checkpoint = dl_utils.load_checkpoint(out / "mnist_model.pth")
    assert checkpoint["metrics"]["test_accuracy"] == results["test_accuracy"]
    assert checkpoint["model_config"] == {"hidden": train.HIDDEN, "dropout": 0.0, "batch_norm": False}
    assert checkpoint["hyperparameters"] == saved["hyperparameters"]  # one config, recorded the same everywhere
    assert "out_dir" not in saved["hyperparameters"] and "data_dir" not in saved["hyperparameters"]
    assert_png(out / "training_history.png")
    rows = list(csv.DictReader((out / "experiments.csv").open()))
    assert rows[-1]["script"] == "03_train_mnist" and float(rows[-1]["test_accuracy"]) == pytest.approx(
        results["test_accuracy"], abs=1e-4)


def test_04_reproduces_03_exactly(trained, tiny_mnist, capsys):
    out, results = trained
    reloaded = load.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--quick"])  # --quick: the same run
    assert reloaded["test_accuracy"] == results["test_accuracy"]
    assert reloaded["identical_to_checkpoint"] is True
    assert "size mismatch for fc1.weight" in reloaded["architecture_mismatch_error"]
    saved = json.loads((out / "04_load_model.json").read_text())
    assert saved["test_accuracy"] == results["test_accuracy"]
    # every setting and mode flag is recorded as parsed; paths of plumbing (--out-dir) are not
    assert {"hidden", "batch_norm", "seed", "model", "draw", "device"} <= set(saved["settings"])
    assert "image" not in saved["settings"]  # a path to your picture, not a setting
    assert saved["settings"]["hidden"] == load.HIDDEN == 0 and saved["settings"]["draw"] is False
    assert "out_dir" not in saved["settings"]
    assert_png(out / "predictions.png")
    printed = capsys.readouterr().out
    steps = [line for line in printed.splitlines() if line.startswith("=== ")]
    assert [s.split(".")[0] for s in steps] == [f"=== {n}" for n in range(1, 8)], steps  # 1 to 7, in order


def test_04s_simplenn_is_the_toolbox_copy_and_loads_03s_keys(trained):
    """04 defines its own SimpleNN (a lesson never imports another); the same layers, the same keys."""
    out, _ = trained
    checkpoint = dl_utils.load_checkpoint(out / "mnist_model.pth")
    for config in ({"hidden": 16}, {"hidden": 16, "batch_norm": True, "dropout": 0.2}):
        ours, toolbox = load.SimpleNN(**config), dl_utils.SimpleNN(**config)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in
                                                                      toolbox.state_dict().items()}
        toolbox.load_state_dict(ours.state_dict())
        x = torch.randn(4, 1, 28, 28)
        assert torch.equal(ours.eval()(x), toolbox.eval()(x))
    model = load.build_model(checkpoint)
    assert type(model) is load.SimpleNN and model.fc1.out_features == checkpoint["model_config"]["hidden"]
    model.load_state_dict(checkpoint["state_dict"])  # raises if a key or a shape differs


def test_03_flags_change_the_model(tiny_mnist, tmp_path, capsys):
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "1",
                          "--hidden", "32", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05",
                          "--dropout", "0.2", "--batch-norm", "--subset", "300"])
    assert results["parameters"] == 784 * 32 + 32 + 2 * 32 + 32 * 10 + 10  # + batch norm's weight and bias
    assert results["hyperparameters"]["optimizer"] == "sgd"
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    assert checkpoint["model_config"] == {"hidden": 32, "dropout": 0.2, "batch_norm": True}
    assert "norm.running_mean" in checkpoint["state_dict"]
    printed = capsys.readouterr().out
    # the layers asked for are in the printout (without them, it shows none: tests/test_03_break_it.py)
    printout = printed[printed.index("SimpleNN("):printed.index("Parameters:")]
    assert "(norm): BatchNorm1d(32" in printout and "(dropout): Dropout(p=0.2" in printout
    steps = [line.split(".")[0] for line in printed.splitlines() if line.startswith("=== ")]
    assert steps == [f"=== {n}" for n in range(1, 7)]  # steps 1 to 6, in order, one header style


def test_04_reads_model_config_and_explains_a_mismatch_you_ask_for(tiny_mnist, tmp_path):
    train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--hidden", "32"])
    common = ["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path)]
    # no --hidden: 04 builds what the checkpoint's model_config says (hidden 32), and loads it
    reloaded = load.main(common)
    assert reloaded["identical_to_checkpoint"] and reloaded["parameters"] == 784 * 32 + 32 + 32 * 10 + 10
    assert reloaded["settings"]["hidden"] == 0
    # a --hidden that differs: PyTorch's own refusal, explained, with the fix
    with pytest.raises(dl_utils.CourseError) as caught:
        load.main(common + ["--hidden", "64"])
    message = str(caught.value)
    assert "size mismatch for fc1.weight" in message and "torch.Size([32, 784])" in message  # PyTorch's words
    assert "SimpleNN(hidden=32, batch_norm=False)" in message and "leave out --hidden 64" in message
    with pytest.raises(dl_utils.CourseError, match="Missing key.*norm.weight(.|\n)*leave out --batch-norm"):
        load.main(common + ["--batch-norm"])
    # the same size as the checkpoint's, typed by hand, loads as well
    assert load.main(common + ["--hidden", "32"])["identical_to_checkpoint"]


@pytest.mark.parametrize("arch, expected", [("ResNet", "holds a ResNet model"),
                                            ("CNN", "cannot load .* into the CNN class")])
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


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--batch-size", "-64"], ["--lr", "0"], ["--hidden", "0"],
                                   ["--lr", "fast"], ["--device", "tpu"], ["--dropout", "1.5"], ["--dropout", "1"],
                                   ["--momentum", "1"], ["--patience", "-1"], ["--subset", "-5"],
                                   ["--optimizer", "rmsprop"], ["--seed", "0.5"]])
def test_03_rejects_bad_flag_values(flags, capsys):
    with pytest.raises(SystemExit) as caught:
        train.main(flags)
    assert caught.value.code == 2  # argparse's "usage error" status
    assert f"error: argument {flags[0]}" in capsys.readouterr().err


def test_03_help_shows_the_courses_specification(capsys, tmp_path):
    """`python 03_train_mnist.py --help` shows the specification: 784 -> 128 -> 10, Adam lr 0.001, batch 64, 10 epochs."""
    with pytest.raises(SystemExit) as caught:
        train.main(["--help"])
    assert caught.value.code == 0
    lines = capsys.readouterr().out.splitlines()

    def entry(flag):  # a flag's --help entry, its wrapped lines joined
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-")), len(lines))
        return " ".join(" ".join(lines[start:end]).split())

    for flag, default in (("--hidden", "128"), ("--optimizer", "adam"), ("--lr", "0.001"), ("--batch-size", "64"),
                          ("--epochs", "10")):
        assert entry(flag).endswith(f"(default: {default})"), entry(flag)
    assert entry("--hidden").startswith("--hidden HIDDEN neurons in the hidden layer")  # the comment is the help
    assert entry("--optimizer").startswith("--optimizer {adam,sgd}")
    # and the parsed defaults are those numbers (0-default settings accept 0: "off")
    _, args = train.parse_settings(["--out-dir", str(tmp_path), "--patience", "0", "--subset", "0"])
    assert (args.hidden, args.optimizer, args.lr, args.batch_size, args.epochs) == (128, "adam", 1e-3, 64, 10)
    assert (args.patience, args.subset, args.dropout, args.batch_norm, args.init) == (0, 0, 0.0, False, "default")


def test_03_momentum_needs_sgd(tmp_path):
    with pytest.raises(dl_utils.CourseError, match="--optimizer sgd"):
        train.main(["--momentum", "0.9", "--out-dir", str(tmp_path)])  # (not the repository's outputs/)
    _, args = train.parse_settings(["--momentum", "0.9", "--optimizer", "sgd", "--out-dir", str(tmp_path)])
    assert args.momentum == 0.9


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


def test_04_reads_your_own_digit_and_rejects_a_non_image(trained, tiny_mnist, tmp_path, capsys):
    out, _ = trained
    learner_photo(dl_utils.load_mnist_data(tiny_mnist), 3, tmp_path / "d.jpg", size=200, mode="RGB")
    own = tmp_path / "own"
    # --image needs no MNIST (no --data-dir here) and none of the lesson's printout
    results = load.main(["--model", str(out / "mnist_model.pth"), "--out-dir", str(own), "--image",
                         str(tmp_path / "d.jpg")])
    # What 04 reports is what the saved model says about the prepared picture, with the saved normalisation
    # (a wrong model, normalisation or preprocessing gives another answer or confidence):
    checkpoint = dl_utils.load_checkpoint(out / "mnist_model.pth")
    model = load.build_model(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    _, _, tensor = dl_utils.prepare_digit_image(tmp_path / "d.jpg", **checkpoint["normalization"])
    expected = dl_utils.predict_digit(model, tensor)
    assert results["image_prediction"] == int(expected.argmax())
    assert results["image_confidence"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert (own / "own_digit.png").stat().st_size > 10_000
    assert sorted(p.name for p in own.iterdir()) == ["own_digit.png"]  # no predictions.png, no results JSON
    printed = capsys.readouterr().out
    assert "===" not in printed and "Inside one prediction" not in printed and len(printed.splitlines()) <= 8
    assert f"Saved {own / 'own_digit.png'}" in printed and f"Predicted digit: {int(expected.argmax())}" in printed
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(dl_utils.CourseError):
        load.main(["--model", str(out / "mnist_model.pth"), "--out-dir", str(own), "--image",
                   str(tmp_path / "notes.png")])


def test_04_checks_your_picture_before_the_test_set(trained, tiny_mnist, tmp_path):
    """A typo in --image is reported at once: nothing else (predictions.png) gets done."""
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
    model = load.build_model(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    natural = dl_utils.load_mnist_data(tiny_mnist, normalization=checkpoint["normalization"])
    unshuffled = dl_utils.evaluate(model, natural.test_loader, torch.nn.CrossEntropyLoss())
    assert unshuffled["accuracy"] != pytest.approx(trained["test_accuracy"], abs=1e-9)
    (tmp_path / "d.png").write_bytes(b"")
    with pytest.raises(dl_utils.CourseError, match="--pixels shuffled"):
        load.main(common + ["--image", str(tmp_path / "d.png")])


def test_03_fused_adam_reaches_the_optimizer_and_falls_back_where_missing(monkeypatch, tmp_path):
    model, cpu = train.SimpleNN(), torch.device("cpu")

    def optimizer_for(*flags):
        return train.make_optimizer(model, train.parse_settings(["--out-dir", str(tmp_path), *flags])[1], cpu)

    assert optimizer_for().defaults["fused"] is True  # the default: fused Adam, lr 0.001
    assert optimizer_for().defaults["lr"] == 1e-3 and type(optimizer_for()) is torch.optim.Adam
    assert not optimizer_for("--no-fused").defaults["fused"]
    sgd = optimizer_for("--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.1")
    assert type(sgd) is torch.optim.SGD and (sgd.defaults["momentum"], sgd.defaults["lr"]) == (0.9, 0.1)
    assert dl_utils.fused_adam_works(cpu)  # torch >= 2.4 (requirements.txt) has it on the CPU

    real_adam = torch.optim.Adam

    def adam_without_fused_kernel(params, *args, fused=None, **kwargs):  # a PyTorch build or device without it
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real_adam(params, *args, fused=fused, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", adam_without_fused_kernel)
    assert dl_utils.fused_adam_works(cpu) is False
    fallback = optimizer_for()  # --fused is the default: 03 still trains, with Adam's for-loop update
    assert isinstance(fallback, real_adam) and not fallback.defaults["fused"]
