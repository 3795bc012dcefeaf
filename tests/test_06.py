"""Tests for 06_cnn_mnist.py, its side pieces in extras/, and the inspecting helpers in dl_utils.

A smoke test runs 06 in-process on the tiny synthetic MNIST (conftest.py) and checks every file it
writes; unit tests check 06's own loop (03's plus a scheduler step), that dl_utils' copies of CNN and
fgsm_attack stay identical to 06's, the settings block as flags, and the confusion-matrix and
mistake-gallery helpers on hand-made predictions whose confusions are known.
"""

import ast
import csv
import inspect
import json
import textwrap

import matplotlib.image
import pytest
import torch

import dl_utils
from conftest import learner_photo, load_script
from extras import adversarial, augment, feature_maps, mlp_vs_cnn

cnn = load_script("06_cnn_mnist")

PNGS_06 = ["cnn_training_history.png", "cnn_filters.png", "cnn_feature_maps.png", "confusion_matrix.png",
           "misclassified.png", "mlp_vs_cnn.png", "adversarial_example.png"]


def assert_png(path, min_width=400):
    image = matplotlib.image.imread(path)  # fails if the file is not a PNG
    assert image.shape[1] >= min_width and image.std() > 0.01, f"{path} looks empty"


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


# ---------------------------------------------------------------------------
# The harvested copies: dl_utils.CNN and dl_utils.fgsm_attack are 06's code
# ---------------------------------------------------------------------------
def _code(source: str) -> str:
    """The code in `source` without its comments and docstrings (ast.dump of the parsed text)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@pytest.mark.parametrize("name", ["CNN", "fgsm_attack"])
def test_dl_utils_copies_are_06s_code(name):
    ours, theirs = inspect.getsource(getattr(cnn, name)), inspect.getsource(getattr(dl_utils, name))
    assert _code(ours) == _code(theirs), (
        f"06's {name} and dl_utils.{name} differ: change both (04 and 07 rebuild 06's model from dl_utils)")


def test_the_copy_comparison_can_fail():
    """_code ignores comments and docstrings, nothing else: a changed layer size is noticed."""
    source = inspect.getsource(dl_utils.CNN)
    assert _code(source.replace("nn.Linear(128, 10)", "nn.Linear(128, 11)")) != _code(source)
    assert _code(source.replace("dropout: float = 0.25", "dropout: float = 0.5")) != _code(source)
    reworded = source.replace("super().__init__()", "super().__init__()  # a new comment").replace(
        "make of the images x", "make of x")  # comments and docstrings may differ
    assert reworded != source and _code(reworded) == _code(source)


# ---------------------------------------------------------------------------
# 06's own epoch: 03's five steps plus scheduler.step()
# ---------------------------------------------------------------------------
def _weights_after_one_epoch(tiny_mnist, epoch_fn, **kwargs):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32, subset=128)  # 4 batches
    torch.manual_seed(0)
    model = cnn.CNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data.train_loader.generator.manual_seed(1)  # the same batch order for every run
    result = epoch_fn(model, data.train_loader, torch.nn.CrossEntropyLoss(), optimizer, **kwargs)
    return model.state_dict(), result, optimizer, data


def test_06s_epoch_without_a_schedule_is_03s_loop(tiny_mnist):
    ours, our_result, _, _ = _weights_after_one_epoch(tiny_mnist, cnn.train_one_epoch)
    theirs, their_result, _, _ = _weights_after_one_epoch(tiny_mnist, dl_utils.train_one_epoch)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert our_result == pytest.approx(their_result)


def test_06s_epoch_steps_the_schedule_after_every_batch(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=64)
    model = cnn.CNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, epochs=1,
                                                    steps_per_epoch=len(data.train_loader))
    rates = []  # the learning rate each batch is trained with

    def recording_loader():
        for batch in data.train_loader:
            rates.append(optimizer.param_groups[0]["lr"])
            yield batch

    cnn.train_one_epoch(model, recording_loader(), torch.nn.CrossEntropyLoss(), optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == len(rates) == len(data.train_loader) == 9  # 550 images / 64 = 9 batches
    assert rates[0] == pytest.approx(1e-2 / 25) and max(rates) == pytest.approx(1e-2, rel=0.05)  # warm up to the peak
    assert len(set(rates)) == 9 and rates[-1] < rates[len(rates) // 2]  # a new rate every batch, then down again


def test_06_trains_with_its_own_epoch_and_one_schedule(tiny_mnist, monkeypatch):
    """--schedule constant builds no OneCycle (else the comparison measures nothing); onecycle one, stepped per batch."""
    made, real = [], torch.optim.lr_scheduler.OneCycleLR
    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    data = dl_utils.load_mnist_data(tiny_mnist, subset=64)
    parser = cnn.build_parser()
    cnn.train(cnn.CNN(), data, parser.parse_args(["--epochs", "1", "--schedule", "constant"]), torch.device("cpu"))
    assert made == []
    cnn.train(cnn.CNN(), data, parser.parse_args(["--epochs", "2"]), torch.device("cpu"))
    assert len(made) == 1
    assert made[0].last_epoch == 2 * len(data.train_loader)  # one step per batch, through dl_utils.fit
    assert made[0].optimizer.param_groups[0]["max_lr"] == cnn.LR


# ---------------------------------------------------------------------------
# The whole lesson, on the tiny MNIST
# ---------------------------------------------------------------------------
def test_06_writes_everything_and_compares_with_03(tiny_mnist, tmp_path, monkeypatch, capsys):
    (tmp_path / "03_train_mnist.json").write_text(json.dumps(
        {"parameters": 101_770, "test_accuracy": 0.9767, "train_seconds": 9.8, "epochs_run": 10,
         "hyperparameters": {"subset": 0}, "history": {"val_accuracy": [0.95 + i / 1000 for i in range(10)]}}))
    # A setting added to 06's settings block becomes a flag and is recorded everywhere, with no other edit.
    monkeypatch.setitem(cnn.SETTINGS, "NEW_SETTING", 7)
    photo = learner_photo(dl_utils.load_mnist_data(tiny_mnist), 5, tmp_path / "digit.png", size=150)
    results = cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "1",
                        "--new-setting", "8", "--image", str(photo)])
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "06_cnn_mnist.json").read_text())
    row = next(csv.DictReader((tmp_path / "experiments.csv").open()))
    assert saved["hyperparameters"]["new_setting"] == 8 and row["new_setting"] == "8"
    for name in cnn.SETTINGS:  # the recorded config is the settings block, flag by flag
        assert name.lower() in saved["hyperparameters"] and name.lower() in row, name
    assert saved["hyperparameters"]["optimizer"] == "adam" and saved["hyperparameters"]["pixels"] == "natural"
    assert saved["hyperparameters"]["batch_size"] == 128 and saved["hyperparameters"]["lr"] == 0.007
    assert not {"data_dir", "out_dir", "show", "quick"} & set(saved["hyperparameters"])  # paths are not settings
    for step in ("1. The model", "4. Train", "8. Fooling it", "9. Your own digit"):
        assert f"=== {step}" in printed
    # 03 ran 10 epochs, this run 1: the comparison says so, at the same epoch.
    assert "At the same epoch, 1: validation accuracy MLP 95.00%" in printed
    assert printed.rstrip().endswith("python exercises/check.py (the exercises)")
    assert "Next: python 07_look_inside.py" in printed
    for key in ("test_accuracy", "parameters", "train_seconds", "history", "layer_shapes", "parameters_by_layer",
                "multiply_adds_per_image", "confusion_matrix", "most_confused", "most_confused_pairs",
                "test_mistakes", "mlp_comparison", "fgsm_test_accuracy"):
        assert key in saved, key
    assert saved["parameters"] == 421_642 and saved["test_accuracy"] == results["test_accuracy"]
    matrix = torch.tensor(saved["confusion_matrix"])
    assert matrix.sum() == 200 and 200 - matrix.trace() == saved["test_mistakes"]
    assert abs(matrix.trace() / 200 - saved["test_accuracy"]) < 1e-9
    assert saved["mlp_comparison"]["test_accuracy"] == 0.9767
    assert 0 <= saved["fgsm_test_accuracy"] <= 1
    checkpoint = dl_utils.load_checkpoint(tmp_path / "cnn_model.pth", made_by="06_cnn_mnist.py")
    assert checkpoint["arch"] == "CNN" and checkpoint["metrics"]["test_accuracy"] == results["test_accuracy"]
    assert checkpoint["hyperparameters"] == saved["hyperparameters"]
    model = dl_utils.build_model(checkpoint)  # what 04 and 07 do: the harvested class, from arch + model_config
    model.load_state_dict(checkpoint["state_dict"])  # channels_last weights load into a default model
    data = dl_utils.load_mnist_data(tiny_mnist, normalization=checkpoint["normalization"])
    assert dl_utils.evaluate(model, data.test_loader, torch.nn.CrossEntropyLoss())["accuracy"] == pytest.approx(
        results["test_accuracy"])
    assert 0 <= saved["image_prediction"] <= 9 and saved["image"] == str(photo)
    for name in PNGS_06 + ["own_digit.png"]:
        assert_png(tmp_path / name)


def test_06_flags_from_the_settings_block():
    parser = cnn.build_parser()
    defaults = parser.parse_args([])
    assert (defaults.epochs, defaults.batch_size, defaults.lr, defaults.schedule) == (2, 128, 7e-3, "onecycle")
    assert defaults.label_smoothing == 0.05 and defaults.channels_last and defaults.fused and not defaults.augment
    args = parser.parse_args(["--no-channels-last", "--no-fused", "--schedule", "constant", "--augment",
                              "--label-smoothing", "0", "--dropout", "0"])
    assert not args.channels_last and not args.fused and args.schedule == "constant" and args.augment
    assert args.label_smoothing == 0 and args.dropout == 0  # 0 switches them off
    assert parser.parse_args(["--scheduler", "constant"]).schedule == "constant"  # the first edition's name still works
    assert "2x the course's 64" in parser.format_help()  # the settings' comments are the help
    assert dl_utils.BATCH_SIZE == 64 and cnn.BATCH_SIZE == 2 * dl_utils.BATCH_SIZE


def test_06_quick_is_one_epoch_on_a_subset(tmp_path):
    args = dl_utils.parse_args(cnn.build_parser(), ["--quick", "--out-dir", str(tmp_path)])
    assert args.epochs == 1 and args.subset == dl_utils.QUICK_SUBSET


@pytest.mark.parametrize("flags", [["--schedule", "cosine"], ["--epsilon", "1.5"], ["--dropout", "-0.1"],
                                   ["--optimizer", "sgd"], ["--label-smoothing", "1"]])
def test_06_rejects_bad_flags(flags, capsys):
    with pytest.raises(SystemExit) as caught:
        cnn.main(flags)
    assert caught.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_06_pixels_shuffled_reaches_the_data(tiny_mnist, tmp_path):
    """--pixels shuffled: 06 trains and tests on the same fixed shuffle that dl_utils makes (03 uses it too)."""
    parser = cnn.build_parser()
    shuffled = cnn.load_data(parser.parse_args(["--data-dir", str(tiny_mnist), "--pixels", "shuffled"]), "cpu")
    natural = cnn.load_data(parser.parse_args(["--data-dir", str(tiny_mnist)]), "cpu")
    expected = dl_utils.load_mnist_data(tiny_mnist, pixels="shuffled")
    for split in ("train_loader", "val_loader", "test_loader"):
        assert torch.equal(getattr(shuffled, split).images, getattr(expected, split).images)
        assert not torch.equal(getattr(shuffled, split).images, getattr(natural, split).images)
    with pytest.raises(dl_utils.CourseError, match="shuffled"):  # a real picture means nothing to it
        cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--pixels", "shuffled",
                  "--image", str(tmp_path / "digit.png")])


def test_06_checks_your_picture_before_training(tiny_mnist, tmp_path):
    """A typo in --image must not cost a minute of training first."""
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(dl_utils.CourseError, match="not a picture"):
        cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--image",
                  str(tmp_path / "notes.png")])
    assert not (tmp_path / "cnn_model.pth").exists()  # it stopped before training


def test_06_stands_alone_and_main_is_a_list_of_steps():
    source = open(cnn.__file__, encoding="utf-8").read()
    assert "importlib" not in source and "import_script" not in source and "run_path" not in source
    assert len(source.splitlines()) <= 480
    lines = inspect.getsource(cnn.main).splitlines()
    assert len(lines) <= 60, f"06's main() is {len(lines)} lines"
    for extra in (augment, adversarial, feature_maps, mlp_vs_cnn):  # extras never load a lesson either
        text = open(extra.__file__, encoding="utf-8").read()
        assert "06_cnn_mnist" not in text.replace("06_cnn_mnist.py", "") and "importlib" not in text


# ---------------------------------------------------------------------------
# The side pieces in extras/
# ---------------------------------------------------------------------------
def test_mlp_vs_cnn_figure_without_03(tmp_path):
    assert mlp_vs_cnn.load_mlp_results(tmp_path) is None
    layers = {"conv1": 320, "conv2": 18_496, "fc1": 401_536, "fc2": 1_290}
    path = mlp_vs_cnn.plot_mlp_vs_cnn(None, {"fc1": 100_480, "fc2": 1_290},
                                      {"parameters": 421_642, "test_accuracy": 0.99, "train_seconds": 40.0,
                                       "epochs": 3}, layers, tmp_path / "mlp_vs_cnn.png", show=False)
    assert_png(path)


def test_mlp_vs_cnn_reads_03s_checkpoint_when_its_json_is_missing(tmp_path):
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=dl_utils.SimpleNN(), arch="SimpleNN",
                             model_config={"hidden": 128}, hyperparameters={"epochs": 10},
                             metrics={"test_accuracy": 0.97, "train_seconds": 9.0},
                             normalization={"mean": 0.13, "std": 0.31})
    found = mlp_vs_cnn.load_mlp_results(tmp_path)
    assert found["parameters"] == 101_770 and found["test_accuracy"] == 0.97 and found["epochs"] == 10


def test_augmented_loader_moves_the_digits_but_keeps_labels_and_batches():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 10:18, 13:15] = 1.0  # a vertical bar
    labels = torch.arange(8)
    loader = augment.AugmentedLoader(dl_utils.InMemoryLoader(images, labels, batch_size=4, shuffle=False), seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 2 and torch.equal(torch.cat([b for _, b in batches]), labels)
    moved = torch.cat([x for x, _ in batches])
    assert moved.shape == images.shape and not torch.allclose(moved, images, atol=0.05)
    assert float(moved.sum()) == pytest.approx(float(images.sum()), rel=0.2)  # turned and shifted, not erased


def test_fgsm_moves_each_pixel_by_epsilon_and_fools_more(tiny_mnist, tmp_path):
    data = dl_utils.load_mnist_data(tiny_mnist)
    torch.manual_seed(0)
    model = cnn.CNN()
    images, labels = next(iter(data.test_loader))
    attacked = cnn.fgsm_attack(model, images, labels, epsilon=0.1, mean=data.mean, std=data.std)
    change = ((attacked - images) * data.std).abs()  # in pixel units
    assert change.max() <= 0.1 + 1e-5 and (change > 0.099).float().mean() > 0.5  # most pixels move by epsilon
    loss = torch.nn.functional.cross_entropy
    assert loss(model(attacked), labels) > loss(model(images), labels)  # uphill: the loss rises
    probabilities, _ = dl_utils.collect_predictions(model, data.test_loader)
    accuracy = adversarial.fool_it(model, data, {"probabilities": probabilities, "labels": data.test_loader.labels},
                                   cnn.fgsm_attack, epsilon=0.1, test_accuracy=0.1, device="cpu", out_dir=tmp_path)
    assert 0 <= accuracy <= 1
    assert_png(tmp_path / "adversarial_example.png")


@pytest.mark.parametrize("channels_last", [False, True])
def test_06_pooling_before_relu_trains_to_the_same_weights_bit_for_bit(channels_last):
    # 06's comment claims the order changes nothing but speed: the same forward values, the same
    # gradients, so the same weights after training (dropout included: both draw the same masks).
    class TextbookCNN(cnn.CNN):  # the usual order conv -> ReLU -> pool (06 pools first)
        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            return self.fc2(self.dropout(self.relu3(self.fc1(self.flatten(x)))))

    class AvgPool(cnn.CNN):  # the comparison can tell: average pooling does not match
        def forward(self, x):
            x = self.relu1(torch.nn.functional.avg_pool2d(self.conv1(x), 2))
            x = self.relu2(torch.nn.functional.avg_pool2d(self.conv2(x), 2))
            return self.fc2(self.dropout(self.relu3(self.fc1(self.flatten(x)))))

    def train_a_few_steps(model_class, steps=8):
        torch.manual_seed(0)
        model = model_class()
        torch.manual_seed(1)
        batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(steps)]
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        cnn.train_one_epoch(model, batches, torch.nn.CrossEntropyLoss(), optimizer)
        return model.state_dict()

    ours, textbook, other = (train_a_few_steps(c) for c in (cnn.CNN, TextbookCNN, AvgPool))
    assert all(torch.equal(ours[k], textbook[k]) for k in ours)
    assert not torch.equal(other["conv1.weight"], ours["conv1.weight"])


def test_channels_last_changes_the_layout_not_the_maths():
    torch.manual_seed(0)
    model = cnn.CNN().eval()
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    fast = model.to(memory_format=torch.channels_last)  # what 06's train() does on a CPU
    assert fast.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast(x), before, atol=1e-5)


def test_feature_maps_are_tiled_in_order_each_scaled_to_its_max():
    maps = torch.zeros(5, 4, 4)
    for channel in range(5):
        maps[channel, channel % 4, 0] = channel + 1.0  # one bright pixel, brightness = channel + 1
    picture = feature_maps.tile_maps(maps, columns=2)  # 3 rows of 2 tiles, gap 2 above and right of each
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
    assert_png(cnn.plot_confusion_matrix(matrix, tmp_path / "cm.png", title="hand-made"))
    probabilities = torch.nn.functional.one_hot(PREDICTIONS, 10).float() * 0.9 + 0.01
    wrong = dl_utils.misclassified_indices(probabilities, LABELS)
    images = torch.randn(len(wrong), 1, 28, 28)
    assert_png(dl_utils.plot_prediction_grid(images, LABELS[wrong], probabilities[wrong], tmp_path / "gallery.png",
                                             mean=0.13, std=0.31, title="mistakes"), min_width=300)
