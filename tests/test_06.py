"""Tests for 06_cnn_mnist.py and the inspecting helpers in dl_utils.

Smoke tests run each script in-process on the tiny synthetic MNIST (conftest.py) and check every
file it writes; unit tests check the confusion-matrix and mistake-gallery helpers on hand-made
predictions whose confusions are known, the linearity of NoActivationNN, and the parameter counts
the lessons state.
"""

import csv
import json

import matplotlib.image
import pytest
import torch

import dl_utils
from conftest import learner_photo, load_script

cnn = load_script("06_cnn_mnist")


def assert_png(path, min_width=400):
    image = matplotlib.image.imread(path)  # fails if the file is not a PNG
    assert image.shape[1] >= min_width and image.std() > 0.01, f"{path} looks empty"


# ---------------------------------------------------------------------------
# 05: the architectures
# ---------------------------------------------------------------------------
FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "100"]  # 3 steps per run: the suite stays quick


def test_06_parameter_count_and_shapes():
    model = cnn.CNN()
    assert dl_utils.count_parameters(model) == 320 + 18_496 + 401_536 + 1_290 == 421_642
    shapes = {row["layer"]: row["shape"] for row in cnn.print_shapes(model, torch.zeros(5, 1, 28, 28))}
    assert shapes["pool1"] == [5, 32, 14, 14] and shapes["pool2"] == [5, 64, 7, 7]
    assert shapes["flatten"] == [5, 3136] and shapes["fc2"] == [5, 10]
    # print_shapes runs the children one by one: that must be what forward() computes.
    x = torch.randn(3, 1, 28, 28)
    model.eval()
    layer_by_layer = x
    for layer in model.children():
        layer_by_layer = layer(layer_by_layer)
    assert torch.allclose(model(x), layer_by_layer)


def _train_a_few_steps(model, steps=8, channels_last=False):
    """A few Adam steps on fixed random batches; returns the final weights."""
    torch.manual_seed(1)
    batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(steps)]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for images, labels in batches:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.state_dict()


class TextbookCNN(cnn.CNN):
    """06's CNN in the usual order conv -> ReLU -> pool (06 pools first)."""

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.dropout(self.relu3(self.fc1(self.flatten(x)))))


@pytest.mark.parametrize("channels_last", [False, True])
def test_06_pooling_before_relu_trains_to_the_same_weights_bit_for_bit(channels_last):
    # 06's comment claims the order changes nothing but speed: the same forward values, the same
    # gradients, so the same weights after training (dropout included: both draw the same masks).
    weights = []
    for model_class in (cnn.CNN, TextbookCNN):
        torch.manual_seed(0)
        weights.append(_train_a_few_steps(model_class(), channels_last=channels_last))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # and the comparison can tell: a model that pools with average instead does not match
    class AvgPool(cnn.CNN):
        def forward(self, x):
            x = self.relu1(torch.nn.functional.avg_pool2d(self.conv1(x), 2))
            x = self.relu2(torch.nn.functional.avg_pool2d(self.conv2(x), 2))
            return self.fc2(self.dropout(self.relu3(self.fc1(self.flatten(x)))))
    torch.manual_seed(0)
    other = _train_a_few_steps(AvgPool(), channels_last=channels_last)
    assert not torch.equal(other["conv1.weight"], weights[0]["conv1.weight"])


def test_06_writes_everything_and_compares_with_03(tiny_mnist, tmp_path, monkeypatch, capsys):
    (tmp_path / "03_train_mnist.json").write_text(json.dumps(
        {"parameters": 101_770, "test_accuracy": 0.9767, "train_seconds": 9.8, "epochs_run": 10,
         "hyperparameters": {"subset": None}, "history": {"val_accuracy": [0.95 + i / 1000 for i in range(10)]}}))
    # A flag added to 06's parser is recorded in the checkpoint, the JSON and experiments.csv with no other edit.
    build_parser = cnn.build_parser

    def with_a_new_flag():
        parser = build_parser()
        parser.add_argument("--new-setting", type=int, default=7)
        return parser

    monkeypatch.setattr(cnn, "build_parser", with_a_new_flag)
    results = cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "1",
                        "--new-setting", "8"])
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "06_cnn_mnist.json").read_text())
    row = next(csv.DictReader((tmp_path / "experiments.csv").open()))
    assert saved["hyperparameters"]["new_setting"] == 8 and row["new_setting"] == "8"
    for key in ("epochs", "batch_size", "lr", "schedule", "dropout", "channels_last", "augment", "epsilon", "seed",
                "pixels"):
        assert key in saved["hyperparameters"] and key in row, key
    assert not {"data_dir", "out_dir", "image", "show"} & set(saved["hyperparameters"])  # paths are not settings
    assert saved["hyperparameters"]["pixels"] == "natural" and saved["hyperparameters"]["optimizer"] == "adam"
    # 03 ran 10 epochs, this run 1: the comparison says so, at the same epoch.
    assert "At the same epoch, 1: validation accuracy MLP 95.00%" in printed
    assert printed.rstrip().endswith("python exercises/check.py (the exercises)")
    assert "Next: python 07_look_inside.py" in printed
    for key in ("test_accuracy", "parameters", "train_seconds", "history", "layer_shapes", "parameters_by_layer",
                "confusion_matrix", "most_confused", "most_confused_pairs", "test_mistakes", "mlp_comparison"):
        assert key in saved
    assert saved["parameters"] == 421_642 and saved["test_accuracy"] == results["test_accuracy"]
    matrix = torch.tensor(saved["confusion_matrix"])
    assert matrix.sum() == 200 and 200 - matrix.trace() == saved["test_mistakes"]
    assert abs(matrix.trace() / 200 - saved["test_accuracy"]) < 1e-9
    assert saved["mlp_comparison"]["test_accuracy"] == 0.9767
    checkpoint = dl_utils.load_checkpoint(tmp_path / "cnn_model.pth", made_by="06_cnn_mnist.py")
    assert checkpoint["arch"] == "CNN" and checkpoint["metrics"]["test_accuracy"] == results["test_accuracy"]
    assert checkpoint["hyperparameters"] == saved["hyperparameters"]
    model = cnn.CNN(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["state_dict"])  # channels_last weights load into a default model
    for name in PNGS_06:
        assert_png(tmp_path / name)

    # 04 reloads the CNN and reads a picture with it, without training again.
    learner_photo(dl_utils.load_mnist_data(tiny_mnist), 5, tmp_path / "digit.png", size=150)
    reloaded = load_script("04_load_model").main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "04"),
                                                  "--model", str(tmp_path / "cnn_model.pth"),
                                                  "--image", str(tmp_path / "digit.png")])
    assert reloaded["arch"] == "CNN" and reloaded["parameters"] == 421_642
    assert reloaded["identical_to_checkpoint"] and 0 <= reloaded["image_prediction"] <= 9
    assert "Unexpected key(s)" in reloaded["architecture_mismatch_error"]  # the on-purpose SimpleNN load


def test_06_flags_and_the_figure_without_03(tmp_path):
    args = cnn.build_parser().parse_args(["--no-channels-last", "--schedule", "constant"])
    assert args.channels_last is False and args.schedule == "constant" and cnn.build_parser().parse_args([]).channels_last
    assert cnn.build_parser().parse_args(["--scheduler", "constant"]).schedule == "constant"  # the old name still works
    assert cnn.build_parser().parse_args([]).schedule == "onecycle"
    layers = {"conv1": 320, "conv2": 18_496, "fc1": 401_536, "fc2": 1_290}
    path = cnn.plot_mlp_vs_cnn(None, {"fc1": 100_480, "fc2": 1_290},
                               {"parameters": 421_642, "test_accuracy": 0.99, "train_seconds": 40.0, "epochs": 3},
                               layers, tmp_path / "mlp_vs_cnn.png", show=False)
    assert_png(path)


def test_06_pixels_shuffled_reaches_the_data(tiny_mnist, tmp_path):
    """--pixels shuffled: 06 trains and tests on the same fixed shuffle that dl_utils makes (03 uses it too)."""
    parser = cnn.build_parser()
    shuffled = cnn.load_data(parser.parse_args(["--data-dir", str(tiny_mnist), "--pixels", "shuffled"]), "cpu")
    natural = cnn.load_data(parser.parse_args(["--data-dir", str(tiny_mnist)]), "cpu")
    expected = dl_utils.load_mnist_data(tiny_mnist, pixels="shuffled")
    for split in ("train_loader", "val_loader", "test_loader"):
        assert torch.equal(getattr(shuffled, split).images, getattr(expected, split).images)
        assert not torch.equal(getattr(shuffled, split).images, getattr(natural, split).images)
    assert parser.parse_args([]).pixels == "natural"
    with pytest.raises(dl_utils.CourseError, match="shuffled"):  # a real picture means nothing to it
        cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--pixels", "shuffled",
                  "--image", str(tmp_path / "digit.png")])


@pytest.mark.parametrize("flags", [["--schedule", "cosine"], ["--epsilon", "1.5"], ["--dropout", "-0.1"]])
def test_06_rejects_bad_flags(flags, capsys):
    with pytest.raises(SystemExit) as caught:
        cnn.main(flags)
    assert caught.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_06_schedule_constant_builds_no_schedule(tiny_mnist, monkeypatch):
    """--schedule constant must not build a OneCycle schedule (else the comparison measures nothing)."""
    made, real = [], torch.optim.lr_scheduler.OneCycleLR
    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", lambda *a, **k: made.append(k) or real(*a, **k))
    data = dl_utils.load_mnist_data(tiny_mnist, subset=64)
    cnn.train(cnn.CNN(), data, cnn.build_parser().parse_args(["--epochs", "1", "--schedule", "constant"]),
              torch.device("cpu"))
    assert made == []
    cnn.train(cnn.CNN(), data, cnn.build_parser().parse_args(["--epochs", "1"]), torch.device("cpu"))
    assert len(made) == 1 and made[0]["max_lr"] == cnn.LEARNING_RATE


def test_lesson_helpers_live_in_06_not_in_dl_utils():
    for name in ("fgsm_attack", "AugmentedLoader", "to_channels_last"):
        assert hasattr(cnn, name) and not hasattr(dl_utils, name), name
        assert getattr(cnn, name).__doc__  # moved with its explanation


@pytest.mark.parametrize("script", ["01_hello_pytorch", "02_load_mnist", "06_cnn_mnist"])
def test_main_reads_as_a_list_of_sections(script):
    import inspect

    lines = inspect.getsource(load_script(script).main).splitlines()
    assert len(lines) <= 80, f"{script}.main() is {len(lines)} lines"


def test_06_reads_03s_checkpoint_when_its_json_is_missing(tmp_path):
    mlp = load_script("03_train_mnist").SimpleNN()
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=mlp, arch="SimpleNN", model_config={"hidden": 128},
                             hyperparameters={"epochs": 10}, metrics={"test_accuracy": 0.97, "train_seconds": 9.0},
                             normalization={"mean": 0.13, "std": 0.31})
    found = cnn.load_mlp_results(tmp_path)
    assert found["parameters"] == 101_770 and found["test_accuracy"] == 0.97 and found["epochs"] == 10


def test_channels_last_changes_the_layout_not_the_maths():
    torch.manual_seed(0)
    model = cnn.CNN().eval()
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    fast = cnn.to_channels_last(model)
    assert fast.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast(x), before, atol=1e-5)


# ---------------------------------------------------------------------------
# The helpers: confusion matrix and mistake gallery, on predictions made by hand
# ---------------------------------------------------------------------------
# 3 classes. Truth and prediction, chosen so the confusions are known:
#   class 0: 4 right;  class 1: 2 right, 3 read as 2;  class 2: 1 right, 1 read as 1, 1 read as 0.
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
PREDICTIONS = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 1, 0])


def test_confusion_matrix_counts_true_rows_predicted_columns():
    matrix = dl_utils.confusion_matrix(PREDICTIONS, LABELS, num_classes=3)
    assert matrix.tolist() == [[4, 0, 0], [0, 2, 3], [1, 1, 1]]
    assert matrix.sum() == len(LABELS) and matrix.trace() == 7  # 7 of 12 correct


def test_most_confused_pairs():
    matrix = dl_utils.confusion_matrix(PREDICTIONS, LABELS, num_classes=3)
    assert dl_utils.most_confused_pairs(matrix, k=5) == [(1, 2, 3), (2, 0, 1), (2, 1, 1)]  # ties in digit order
    assert dl_utils.most_confused_pairs(matrix, k=1, both_ways=True) == [(1, 2, 4)]  # 1->2 (3) + 2->1 (1)
    assert dl_utils.most_confused_pairs(torch.eye(3, dtype=torch.long) * 5) == []  # no mistakes, no pairs


def test_misclassified_indices_most_confident_first():
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.55, 0.95, 0.7, 0.9, 0.6, 0.99])
    probabilities = torch.zeros(12, 3)
    probabilities[torch.arange(12), PREDICTIONS] = confidence
    probabilities[torch.arange(12), (PREDICTIONS + 1) % 3] = 1 - confidence
    wrong = dl_utils.misclassified_indices(probabilities, LABELS)
    assert wrong.tolist() == [11, 7, 8, 10, 6]  # the 5 mistakes, by falling confidence
    assert dl_utils.misclassified_indices(probabilities, LABELS, k=2).tolist() == [11, 7]
    right = dl_utils.misclassified_indices(probabilities, probabilities.argmax(1))
    assert len(right) == 0


def test_confusion_and_gallery_plots(tmp_path):
    matrix = dl_utils.confusion_matrix(PREDICTIONS, LABELS, num_classes=10)
    assert matrix.shape == (10, 10)
    assert_png(dl_utils.plot_confusion_matrix(matrix, tmp_path / "cm.png", title="hand-made"))
    probabilities = torch.nn.functional.one_hot(PREDICTIONS, 10).float() * 0.9 + 0.01
    wrong = dl_utils.misclassified_indices(probabilities, LABELS)
    images = torch.randn(len(wrong), 1, 28, 28)
    assert_png(dl_utils.plot_prediction_grid(images, LABELS[wrong], probabilities[wrong], tmp_path / "gallery.png",
                                             mean=0.13, std=0.31, title="mistakes"), min_width=300)


def test_06_checks_your_picture_before_training(tiny_mnist, tmp_path):
    """A typo in --image must not cost a minute of training first."""
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(dl_utils.CourseError, match="not a picture"):
        cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--image",
                  str(tmp_path / "notes.png")])
    assert not (tmp_path / "cnn_model.pth").exists()  # it stopped before training



def test_feature_maps_are_tiled_in_order_each_scaled_to_its_max():
    maps = torch.zeros(5, 4, 4)
    for channel in range(5):
        maps[channel, channel % 4, 0] = channel + 1.0  # one bright pixel, brightness = channel + 1
    picture = cnn.tile_maps(maps, columns=2)  # 3 rows of 2 tiles, gap 2 above and right of each
    assert picture.shape == (3 * (4 + 2), 2 * (4 + 2))
    for channel in range(5):
        top, left = (channel // 2) * 6 + 2, (channel % 2) * 6
        tile = picture[top:top + 4, left:left + 4]
        assert tile.max() == 1.0 and tile[channel % 4, 0] == 1.0  # scaled to its own maximum, in its own place
    assert torch.isnan(torch.tensor(picture[2:6, 10:12])).all()  # the gaps (and the missing 6th tile) are NaN


@pytest.mark.parametrize("smoothing", [0.05, 0.1])
def test_06_smoothing_floor_is_pytorchs_lowest_smoothed_loss(smoothing):
    """The floor 06 prints is what nn.CrossEntropyLoss(label_smoothing=...) gives an answer as sure as its target,
    and any other answer scores more."""
    target = torch.full((10,), smoothing / 10)
    target[3] += 1 - smoothing
    loss = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    at_target = loss(target.log()[None], torch.tensor([3]))
    assert float(at_target) == pytest.approx(cnn.smoothing_floor(smoothing), abs=1e-6)
    assert cnn.smoothing_floor(0.05) == pytest.approx(0.2824, abs=1e-4)
    surer = torch.zeros(1, 10)
    surer[0, 3] = 20.0  # nearly 100% sure of the right digit: more than the target asks
    assert float(loss(surer, torch.tensor([3]))) > float(at_target) + 0.1

