"""benchmarks/limitations.py: what the models cannot do (inverted, shifted, letters, noise, other shapes).

The picture changes are checked on hand-made images; the whole script runs
once on the tiny synthetic MNIST (conftest.py), training its two tiny models
there, and its JSON must hold every key the guide quotes.
"""

import json

import numpy as np
import pytest
import torch

import dl_utils
from benchmarks import limitations
from conftest import REPO, assert_png


def blob(row: int = 10, col: int = 12) -> torch.Tensor:
    """(1, 1, 28, 28) pixels in [0, 1]: a lopsided 5x4 patch of ink, well inside the frame."""
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, row:row + 5, col:col + 4] = torch.linspace(0.2, 1.0, 20).reshape(5, 4)
    return image


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_shift_moves_the_centre_of_mass_by_k_right_and_down(k):
    image = blob()
    row, col = dl_utils.center_of_mass(image[0, 0].numpy())
    moved = limitations.shift(image, k)
    assert moved.shape == image.shape and float(moved.sum()) == pytest.approx(float(image.sum()))  # none lost
    new_row, new_col = dl_utils.center_of_mass(moved[0, 0].numpy())
    assert (new_row - row, new_col - col) == pytest.approx((k, k))
    assert moved[0, 0, :k].abs().sum() == 0 and moved[0, 0, :, :k].abs().sum() == 0  # zeros came in, top and left


def test_shift_loses_the_ink_pushed_past_the_edge():
    image = torch.zeros(2, 1, 28, 28)
    image[:, 0, 27, 27], image[:, 0, 20, 20] = 1.0, 0.5
    moved = limitations.shift(image, 4)
    assert moved[:, 0, 24, 24].tolist() == [0.5, 0.5] and float(moved.sum()) == pytest.approx(1.0)


def test_invert_is_one_minus_the_pixels():
    image = blob()
    inverted = limitations.invert(image)
    assert torch.allclose(inverted, 1 - image)
    assert inverted[0, 0, 0, 0] == 1 and inverted.min() == 0  # black paper became white, full ink black
    assert torch.allclose(limitations.invert(inverted), image)


@pytest.mark.parametrize("letter", ["A", "H", "Z"])
def test_a_letter_is_rendered_like_an_mnist_digit(letter):
    image = limitations.render_letter(letter)
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() == pytest.approx(1.0)  # white ink on black
    pixels = image[0].numpy()
    row, col = dl_utils.center_of_mass(pixels)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1  # centred by its centre of mass, as MNIST
    rows, cols = np.nonzero(pixels > 0.1)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # longest side about 20 pixels
    assert pixels[:2].sum() == 0 and pixels[-2:].sum() == 0  # a black margin, as MNIST


def test_letters_differ():
    a, h = limitations.render_letter("A"), limitations.render_letter("H")
    assert (a - h).abs().mean() > 0.05


def test_summarize_counts_answers_accuracy_and_confidence():
    probabilities = torch.tensor([[0.9, 0.1] + [0.0] * 8, [0.2, 0.8] + [0.0] * 8, [0.6, 0.4] + [0.0] * 8])
    result = limitations.summarize(probabilities, torch.tensor([0, 0, 0]))
    assert result["accuracy"] == pytest.approx(2 / 3) and result["mean_confidence"] == pytest.approx(0.7667, abs=1e-4)
    assert result["answers"][:2] == [2, 1] and result["most_common_answer"] == 0
    assert result["mean_confidence_when_wrong"] == pytest.approx(0.8)
    assert result["share_above_90_percent"] == 0  # 0.9 is not above 0.9
    assert "accuracy" not in limitations.summarize(probabilities)  # no labels (letters, noise): no accuracy


@pytest.fixture(scope="module")
def measured(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("limitations")
    results = limitations.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--device", "cpu"])
    return results, out


def test_the_json_has_every_key(measured):
    results, out = measured
    assert json.loads((out / "limitations.json").read_text()) == json.loads(json.dumps(results))
    for key in ("device", "cpu", "threads", "torch_version", "settings", "models", "test_images", "font",
                "normal", "inverted", "shifted_2", "shifted_4", "shifted_6", "letters", "noise", "blank",
                "colour_and_size"):
        assert key in results, key
    assert results["test_images"] == 200  # tiny_mnist's test set: every test image is used
    for key in ("normal", "inverted", "shifted_2", "shifted_4", "shifted_6"):
        for model in ("mlp", "cnn"):
            entry = results[key][model]
            assert 0 <= entry["accuracy"] <= 1 and 0.1 <= entry["mean_confidence"] <= 1
            assert sum(entry["answers"]) == 200 and "mean_confidence_when_wrong" in entry
    assert 0 <= results["shifted_2"]["ink_lost"] <= results["shifted_4"]["ink_lost"] <= results["shifted_6"]["ink_lost"]
    for model in ("mlp", "cnn"):
        letters = results["letters"][model]
        assert list(letters["by_letter"]) == limitations.LETTERS
        assert all(0 <= a["says"] <= 9 and 0.1 <= a["confidence"] <= 1 for a in letters["by_letter"].values())
        assert letters["mean_confidence_on_test_digits"] == results["normal"][model]["mean_confidence"]
        assert sum(results["noise"][model]["answers"]) == limitations.NOISE_IMAGES
        assert 0 <= results["blank"][model]["most_common_answer"] <= 9


def test_colour_and_other_sizes_fail_with_a_shape_error(measured):
    facts = measured[0]["colour_and_size"]
    assert facts["input_shape"] == [None, 1, 28, 28]
    assert facts["mlp_fc1_inputs"] == 784 and facts["cnn_fc1_inputs"] == 64 * 7 * 7
    errors = facts["errors"]
    assert "4096 and 3136x128" in errors["cnn_32x32"] and "1024 and 784x128" in errors["mlp_32x32"]
    assert "3 channels" in errors["cnn_colour_28x28"] and "2352" in errors["mlp_colour_28x28"]


def test_the_figure_is_drawn(measured):
    assert_png(measured[1] / "limitations.png", min_width=1200)


def test_a_given_checkpoint_is_used_instead_of_training(tiny_mnist, tmp_path, capsys):
    paths = {}
    for name, model, config in (("mlp", dl_utils.SimpleNN(), {"hidden": 128}), ("cnn", dl_utils.CNN(), {})):
        paths[name] = dl_utils.save_checkpoint(tmp_path / f"{name}.pth", model=model, arch=type(model).__name__,
                                               model_config=config, hyperparameters={}, metrics={},
                                               normalization={"mean": 0.1, "std": 0.3})
    results = limitations.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu",
                                "--mlp", str(paths["mlp"]), "--cnn", str(paths["cnn"]), "--shifts", "3"])
    assert results["models"] == {"mlp": str(paths["mlp"]), "cnn": str(paths["cnn"])}
    assert "Epoch" not in capsys.readouterr().out  # nothing was trained
    assert "shifted_3" in results and "shifted_2" not in results


def test_a_missing_checkpoint_says_which_lesson_makes_it(tmp_path):
    with pytest.raises(dl_utils.CourseError, match="06_cnn_mnist.py"):
        limitations.load_model(tmp_path / "cnn_model.pth", "cpu", "06_cnn_mnist.py")


def test_run_all_measures_03s_and_06s_own_checkpoints():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all_for_limitations", REPO / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    (entry,) = [run for run in run_all.RUNS if run[0] == "limitations"]
    assert entry[1] == "benchmarks/limitations.py" and entry[3] == ["limitations.png"]
    flags = dict(zip(entry[2][::2], entry[2][1::2]))
    assert flags == {"--mlp": "{03_train_mnist}/mnist_model.pth", "--cnn": "{06_cnn_mnist}/cnn_model.pth"}
