"""Smoke tests for 01_hello_pytorch.py and 02_load_mnist.py (02 on the tiny synthetic MNIST).

Each script runs once per module (a fixture); the tests then check every
file it wrote and recompute its numbers independently with torch.
"""

import ast
import contextlib
import inspect
import io
import json
import math

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F

import dl_utils
from conftest import N_TEST, N_TRAIN, REPO, load_script

hello = load_script("01_hello_pytorch")
mnist = load_script("02_load_mnist")


def run_main(module, argv):
    """Call module.main(argv); returns (results, printed text)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = module.main(argv)
    return results, printed.getvalue()


def assert_png(path, min_width, min_height=300):
    image = matplotlib.image.imread(path)  # fails if the file is not a valid PNG
    assert image.shape[1] >= min_width and image.shape[0] >= min_height, f"{path} is only {image.shape}"
    assert image.std() > 0.01, f"{path} looks empty"


def assert_json_matches(path, results):
    """The JSON file holds exactly what main() returned (after a JSON round trip)."""
    assert json.loads(path.read_text()) == json.loads(json.dumps(results, default=str))


def settings_of(module) -> dict:
    """{"seed": 0, ...}: the defaults of a lesson's UPPERCASE settings, as the flags record them."""
    return {name.lower(): value for name, value in dl_utils.collect_settings(vars(module)).items()}


# --------------------------------------------------------------------------- both: the lesson's shape
@pytest.mark.parametrize("module", [hello, mnist], ids=["01", "02"])
def test_main_is_a_short_list_of_named_steps(module):
    source = inspect.getsource(module.main)
    assert len(source.splitlines()) <= 60, f"main() is {len(source.splitlines())} lines"
    headers = [node.args[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
               and ast.unparse(node.func) == "dl_utils.step"]
    numbers = [int(ast.unparse(h).strip("f'\"").split(".")[0]) for h in headers]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8, numbers


@pytest.mark.parametrize("module", [hello, mnist], ids=["01", "02"])
def test_every_setting_is_a_flag_with_its_reason(module):
    settings = dl_utils.collect_settings(vars(module))
    assert settings, "no UPPERCASE settings block"
    parser = dl_utils.build_parser("x", settings, source=module.__file__)  # help: the comment beside each setting
    for name in settings:
        action = parser._option_string_actions["--" + name.lower().replace("_", "-")]
        assert action.default == (list(settings[name]) if isinstance(settings[name], (list, tuple))
                                  else settings[name])
        assert len(action.help.strip()) > 10, f"{name} has no reason beside it"


@pytest.mark.parametrize("path", ["01_hello_pytorch.py", "02_load_mnist.py"])
def test_no_speed_measurements_in_the_lessons(path):
    """Timings live in docs/PERFORMANCE.md; a lesson points there in one line."""
    source = (REPO / path).read_text(encoding="utf-8")
    assert "perf_counter" not in source and "synchronize" not in source
    assert "docs/PERFORMANCE.md" in source


# --------------------------------------------------------------------------- 01_hello_pytorch
@pytest.fixture(scope="module")
def hello_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out01")
    # --data-dir is accepted for uniformity but never read: a folder that does not exist is fine.
    results, printed = run_main(hello, ["--out-dir", str(out), "--device", "cpu",
                                        "--data-dir", str(out / "no_mnist_here")])
    return out, results, printed


def test_01_writes_its_files(hello_run):
    out, results, _ = hello_run
    assert sorted(p.name for p in out.iterdir()) == ["01_hello_pytorch.json", "activation_functions.png"]
    assert_json_matches(out / "01_hello_pytorch.json", results)
    assert_png(out / "activation_functions.png", min_width=1200, min_height=700)
    for key in ("shapes", "dtypes", "matmul", "broadcast_shape", "numpy_shares_memory", "autograd",
                "activations", "softmax", "device", "device_matmul", "torch_version"):
        assert key in results
    assert "matmul_ms" not in results  # no timing: docs/PERFORMANCE.md has those
    assert results["device"].startswith("cpu")
    # every setting from the parser, no paths
    assert results["settings"] == {**settings_of(hello), "device": "cpu"}
    assert set(results["settings"]) == {"seed", "x_autograd", "sample_inputs", "leaky_slope", "logits",
                                        "temperatures", "device"}


def test_01_flags_reach_the_sections_and_the_record(tmp_path):
    """--logits, --temperatures, --x-autograd, --leaky-slope change what is computed, and are recorded."""
    results, printed = run_main(hello, ["--out-dir", str(tmp_path), "--device", "cpu", "--logits", "-1", "0", "3",
                                        "--temperatures", "0.25", "4", "--x-autograd", "-1.5", "--leaky-slope", "0.3",
                                        "--sample-inputs", "-3", "3"])
    settings = results["settings"]
    assert settings["logits"] == [-1.0, 0.0, 3.0] and settings["temperatures"] == [0.25, 4.0]
    softmax = results["softmax"]
    logits = torch.tensor([-1.0, 0.0, 3.0])
    torch.testing.assert_close(torch.tensor(softmax["probabilities"]), torch.softmax(logits, dim=0))
    assert sorted(softmax["temperatures"]) == ["0.25", "4.0"]
    assert results["autograd"]["dy_dx"] == 2 * -1.5 + 3 == 0.0
    assert results["activations"]["inputs"] == [-3.0, 3.0]
    assert results["activations"]["Leaky ReLU"] == pytest.approx([-0.9, 3.0])
    assert "T = 0.25: softmax(z/T)" in printed and "at x = -1.5" in printed


def test_01_rejects_a_temperature_of_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        hello.main(["--temperatures", "1", "0"])
    assert exit_info.value.code == 2 and "must be a positive number" in capsys.readouterr().err


def test_01_tensor_basics_are_right(hello_run):
    _, results, _ = hello_run
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert results["matmul"] == (a @ b).tolist() == [[22.0, 28.0], [49.0, 64.0]]
    assert results["device_matmul"] == (b.T @ b).tolist() == [[35.0, 44.0], [44.0, 56.0]]
    assert results["shapes"] == {"a": [2, 3], "b": [3, 2]}
    assert results["dtypes"] == {"a": "torch.int64", "b": "torch.float32"}
    assert results["broadcast_shape"] == [3, 4]
    assert results["flattened_batch_shape"] == [64, 784]
    assert results["numpy_shares_memory"] is True


def test_01_autograd_equals_the_hand_derivative(hello_run):
    _, results, printed = hello_run
    grad = results["autograd"]
    x = torch.tensor(grad["x"], requires_grad=True)
    (expected,) = torch.autograd.grad(x ** 2 + 3 * x, x)  # torch itself, independently of the script
    assert grad["dy_dx"] == expected.item() == grad["dy_dx_by_hand"] == 2 * hello.X_AUTOGRAD + 3
    assert grad["y"] == hello.X_AUTOGRAD ** 2 + 3 * hello.X_AUTOGRAD
    assert grad["grad_after_two_backward_calls"] == 2 * grad["dy_dx"]  # gradients accumulate
    assert f"x.grad = {expected.item():g}" in printed


def test_01_activations_match_torch(hello_run):
    _, results, _ = hello_run
    values = results["activations"]
    x = torch.tensor(values["inputs"])
    expected = {"ReLU": torch.relu(x), "Leaky ReLU": F.leaky_relu(x, hello.LEAKY_SLOPE),
                "Sigmoid": torch.sigmoid(x), "Tanh": torch.tanh(x)}
    assert set(expected) <= set(values)
    for name, want in expected.items():
        torch.testing.assert_close(torch.tensor(values[name]), want)
    assert values["ReLU"][0] == 0.0 and values["Leaky ReLU"][0] == pytest.approx(hello.LEAKY_SLOPE * x[0].item())
    assert values["Sigmoid"][2] == 0.5 and values["Tanh"][2] == 0.0


def test_01_softmax_and_temperature(hello_run):
    _, results, printed = hello_run
    softmax = results["softmax"]
    logits = torch.tensor(softmax["logits"])
    torch.testing.assert_close(torch.tensor(softmax["probabilities"]), torch.softmax(logits, dim=0))
    torch.testing.assert_close(torch.tensor(softmax["by_hand"]), torch.softmax(logits, dim=0))
    assert softmax["sum"] == pytest.approx(1.0, abs=1e-6)
    assert "[0.659, 0.242, 0.099], sum 1.000" in printed  # the worked example, as printed
    top = []
    for temperature in hello.TEMPERATURES:
        probs = torch.tensor(softmax["temperatures"][str(temperature)])
        torch.testing.assert_close(probs, torch.softmax(logits / temperature, dim=0))
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert probs.argmax().item() == logits.argmax().item()  # temperature never changes the winner
        top.append(probs.max().item())
    assert top == sorted(top, reverse=True)  # higher T, flatter: the top probability falls


def test_01_prints_every_section(hello_run):
    _, _, printed = hello_run
    for number in range(1, 11):
        assert f"\n=== {number}. " in printed
    assert "t[0] is 100" in printed  # the view shares memory with the original
    assert "(shared memory: it changed too)" in printed and "(a copy: it did not)" in printed
    assert "see docs/PERFORMANCE.md" in printed and " ms" not in printed  # a pointer, not a timing
    assert printed.rstrip().endswith("Next: python 02_load_mnist.py")


# --------------------------------------------------------------------------- 02_load_mnist
@pytest.fixture(scope="module")
def mnist_run(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("out02")
    results, printed = run_main(mnist, ["--data-dir", str(tiny_mnist), "--out-dir", str(out), "--device", "cpu"])
    return out, results, printed


@pytest.fixture(scope="module")
def tiny_data(tiny_mnist):
    """The tiny MNIST read independently of 02: (train images, train labels, test labels, train indices)."""
    images, labels = dl_utils.read_mnist(tiny_mnist, train=True, download=False)
    _, test_labels = dl_utils.read_mnist(tiny_mnist, train=False, download=False)
    train_idx, _ = dl_utils.split_indices(len(labels))
    return images, labels, test_labels, train_idx


def test_02_writes_its_files(mnist_run):
    out, results, printed = mnist_run
    assert sorted(p.name for p in out.iterdir()) == ["02_load_mnist.json", "mnist_samples.png",
                                                    "mnist_statistics.png"]
    assert_json_matches(out / "02_load_mnist.json", results)
    assert_png(out / "mnist_samples.png", min_width=1000, min_height=600)
    assert_png(out / "mnist_statistics.png", min_width=1200, min_height=450)
    for key in ("split_sizes", "class_counts", "mean", "std", "raw", "normalised", "standard_vs_in_memory",
                "fraction_zero_pixels", "device", "data_dir"):
        assert key in results
    assert results["downloaded"] is False  # the files were there: nothing fetched
    assert results["settings"] == {**settings_of(mnist), "device": "cpu"}
    assert results["settings"]["batch_size"] == dl_utils.BATCH_SIZE == 64  # 03's specification, one place
    for step in range(1, 9):
        assert f"\n=== {step}. " in printed
    assert printed.rstrip().endswith("Next: python 03_train_mnist.py")


def test_02_raw_shapes_and_split_sizes(mnist_run):
    _, results, printed = mnist_run
    raw = results["raw"]
    assert raw["train_images_shape"] == [N_TRAIN, 28, 28] and raw["test_images_shape"] == [N_TEST, 28, 28]
    assert (raw["images_dtype"], raw["labels_dtype"]) == ("torch.uint8", "torch.int64")
    n_val = round(N_TRAIN * dl_utils.VALIDATION_FRACTION)  # 50 of 600, as 5,000 of 60,000
    assert results["split_sizes"] == {"train": N_TRAIN - n_val, "validation": n_val, "test": N_TEST}
    assert f"train      {N_TRAIN - n_val:7,}" in printed and f"validation {n_val:7,}" in printed


def test_02_class_counts_match_the_labels(mnist_run, tiny_data):
    _, results, _ = mnist_run
    _, labels, test_labels, train_idx = tiny_data
    counts = results["class_counts"]
    for split, size in results["split_sizes"].items():
        assert len(counts[split]) == 10 and sum(counts[split]) == size
    assert counts["train"] == torch.bincount(labels[train_idx], minlength=10).tolist()
    assert [a + b for a, b in zip(counts["train"], counts["validation"])] == torch.bincount(labels).tolist()
    assert counts["test"] == torch.bincount(test_labels, minlength=10).tolist() == [N_TEST // 10] * 10


def test_02_mean_std_and_normalisation(mnist_run, tiny_data):
    _, results, printed = mnist_run
    images, _, _, train_idx = tiny_data
    pixels = images[train_idx].double() / 255  # straightforward float maths, no bincount trick
    assert results["mean"] == pytest.approx(pixels.mean().item(), abs=1e-9)
    assert results["std"] == pytest.approx(pixels.std().item(), abs=1e-9)
    assert results["fraction_zero_pixels"] == pytest.approx((pixels == 0).double().mean().item())
    norm = results["normalised"]
    assert norm["batch_shape"] == [dl_utils.BATCH_SIZE, 1, 28, 28] and norm["batch_dtype"] == "torch.float32"
    assert norm["train_mean"] == pytest.approx(0.0, abs=1e-4) and norm["train_std"] == pytest.approx(1.0, abs=1e-4)
    assert norm["black_pixel"] == pytest.approx(-results["mean"] / results["std"])
    assert norm["white_pixel"] == pytest.approx((1 - results["mean"]) / results["std"])
    n_train = results["split_sizes"]["train"]  # 550 = 8 batches of 64 + one of 38
    assert norm["batches_per_epoch"] == math.ceil(n_train / dl_utils.BATCH_SIZE) == 9
    assert f"= 9 batches (8 full, the last of {n_train - 8 * 64})" in printed


def test_02_the_hand_made_batch_is_load_mnist_datas_first_batch(mnist_run):
    norm = mnist_run[1]["normalised"]
    assert norm["by_hand_max_difference"] < 1e-5 and norm["by_hand_same_labels"] is True


def test_02_the_hand_made_batch_check_can_fail(tiny_mnist, tiny_data):
    images, labels, _, train_idx = tiny_data
    data = dl_utils.load_mnist_data(tiny_mnist, seed=1)  # another shuffle than the hand-made seed 0
    with contextlib.redirect_stdout(io.StringIO()):
        found = mnist.normalised_batches(images[train_idx], labels[train_idx], data, mean=data.mean, std=data.std,
                                         seed=0)
    assert found["by_hand_max_difference"] > 0.5 and found["by_hand_same_labels"] is False


def test_02_standard_pipeline_gives_the_same_batches(mnist_run):
    comparison = mnist_run[1]["standard_vs_in_memory"]
    assert comparison["max_abs_difference"] < 1e-5  # ToTensor + Normalize gives the same numbers
    assert comparison["same_labels"] is True
    assert comparison["images"] == mnist_run[1]["split_sizes"]["validation"]
    assert comparison["train_batches"] == [9, 9] and comparison["batch_shape"] == [dl_utils.BATCH_SIZE, 1, 28, 28]


def test_02_the_pipeline_comparison_can_fail(tiny_mnist):
    """Other statistics in the in-memory loader: the comparison sees it."""
    data = dl_utils.load_mnist_data(tiny_mnist, normalization={"mean": 0.5, "std": 0.5})
    with contextlib.redirect_stdout(io.StringIO()):
        found = mnist.standard_vs_in_memory(tiny_mnist, data, batch_size=dl_utils.BATCH_SIZE, seed=0)
    assert found["max_abs_difference"] > 0.1 and found["same_labels"] is True


def test_02_standard_mnist_loaders_is_the_tutorial_pipeline(tiny_mnist):
    from torchvision import transforms

    assert not hasattr(dl_utils, "standard_mnist_loaders")  # 02 writes it; the toolbox has the in-memory one
    train, val, test = mnist.standard_mnist_loaders(tiny_mnist, batch_size=32, subset=100, seed=0)
    steps = train.dataset.dataset.transform.transforms
    assert [type(s) for s in steps] == [transforms.ToTensor, transforms.Normalize]
    images, labels = next(iter(train))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert len(train.dataset) == 100 and len(val.dataset) == 50 and len(test.dataset) == N_TEST
    data = dl_utils.load_mnist_data(tiny_mnist, subset=100)
    assert steps[1].mean == (data.mean,) and steps[1].std == (data.std,)  # the same statistics as the course
    torch.testing.assert_close(next(iter(test))[0], data.test_loader.images[:dl_utils.EVAL_BATCH_SIZE])


def test_02_prints_the_digit_as_numbers(mnist_run, tiny_data):
    _, results, printed = mnist_run
    images, labels, _, _ = tiny_data
    digit = images[mnist.DIGIT_INDEX]
    assert results["first_digit"]["label"] == labels[mnist.DIGIT_INDEX].item()
    assert f"Label {labels[mnist.DIGIT_INDEX].item()}." in printed
    grid = mnist.digit_as_numbers(digit)
    assert grid in printed
    top, bottom, left, right = mnist.ink_box(digit)
    lines = grid.splitlines()
    assert len(lines) == bottom - top + 1 and {len(line) for line in lines} == {4 * (right - left + 1)}


def test_02_a_digit_index_past_the_end_is_one_paragraph(tiny_mnist, tmp_path):
    with pytest.raises(dl_utils.CourseError) as error:
        run_main(mnist, ["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--digit-index", str(N_TRAIN)])
    assert f"--digit-index {N_TRAIN}: there are only {N_TRAIN:,} training images" in str(error.value)


def test_02_a_small_sample_grid_keeps_its_title_readable(tiny_data, tmp_path):
    images, labels, _, _ = tiny_data
    path = mnist.plot_samples(images, labels, tmp_path / "mnist_samples.png", rows=1, columns=3,
                              settings="sample rows 1, sample columns 3")
    assert_png(path, min_width=400, min_height=150)


def test_digit_as_numbers_crops_the_blank_border():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[10, 5:8] = torch.tensor([7, 0, 255], dtype=torch.uint8)
    image[12, 6] = 30
    assert mnist.ink_box(image) == (10, 12, 5, 7)
    assert mnist.digit_as_numbers(image).splitlines() == ["   7   . 255", "   .   .   .", "   .  30   ."]
    assert mnist.ink_box(torch.zeros(28, 28, dtype=torch.uint8)) == (0, 27, 0, 27)  # blank: show it all
