"""07_look_inside.py: each analysis on hand-made inputs whose answer is known, and the lesson on the tiny MNIST."""

import json

import matplotlib.image
import pytest
import torch
from torch import nn

import dl_utils
from conftest import load_script

look = load_script("07_look_inside")
train = load_script("03_train_mnist")
cnn = load_script("06_cnn_mnist")


class OnePixel(nn.Module):
    """A 'network' that only looks at pixel (row, col): logits = weights * that pixel + bias."""

    def __init__(self, row=10, col=17):
        super().__init__()
        self.row, self.col = row, col
        self.weights = nn.Parameter(torch.linspace(-2, 2, 10))
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return x[:, 0, self.row, self.col, None] * self.weights + self.bias  # (B, 10)


def test_saliency_of_a_one_pixel_model_lands_on_that_pixel():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28)
    labels = torch.tensor([0, 3, 9, 9])
    saliency = look.gradient_saliency(OnePixel(), images, labels)
    assert saliency.shape == images.shape
    assert saliency.abs().flatten(1).argmax(1).tolist() == [10 * 28 + 17] * 4
    assert (saliency.abs().sum((1, 2, 3)) == saliency[:, 0, 10, 17].abs()).all()  # nothing anywhere else
    # Its share on a mask holding that pixel is all of it; on a mask without it, none.
    mask = torch.zeros(4, 1, 28, 28, dtype=torch.bool)
    mask[:, :, 9:12, 16:19] = True
    assert look.saliency_on_ink(saliency, mask).tolist() == pytest.approx([1.0] * 4)
    assert look.saliency_on_ink(saliency, ~mask).tolist() == pytest.approx([0.0] * 4)


def test_occlusion_of_a_one_pixel_model_lands_on_that_pixel():
    image = torch.zeros(1, 28, 28)
    image[0, 10, 17] = 1.0  # the pixel the model reads is lit; covering it with grey (0.5) lowers p(9)
    drop = look.occlusion_map(OnePixel(), image, label=9, patch=5, value=0.5)
    assert drop.shape == (28, 28)
    assert drop[10, 17] > 0.05
    covered = torch.zeros(28, 28, dtype=torch.bool)
    covered[6:15, 13:22] = True  # every 5x5 square that covers (10, 17) lies within +-4 pixels of it
    assert drop[~covered].abs().max() == 0
    assert drop[10, 17] == drop.max()


def test_ink_mask_grows_the_ink_by_one_pixel():
    images = torch.zeros(1, 1, 28, 28)
    images[0, 0, 5, 5] = 0.9
    images[0, 0, 20, 20] = 0.3  # below the threshold: not ink
    mask = look.ink_mask(images)
    assert mask.sum() == 9 and mask[0, 0, 4:7, 4:7].all()


def test_a_perfectly_calibrated_toy_model_has_an_ece_near_zero():
    generator = torch.Generator().manual_seed(0)
    confidence = 0.1 + 0.9 * torch.rand(50_000, generator=generator)
    correct = torch.rand(50_000, generator=generator) < confidence  # right exactly as often as it is sure
    measured = look.reliability(confidence, correct)
    assert measured["ece"] < 0.015  # sampling noise only: about 0.4% per bin of 3,333
    assert len(measured["bins"]) == look.N_BINS
    assert sum(b["count"] for b in measured["bins"]) == 50_000
    # An over-confident one: always 99% sure, right half the time.
    assert look.reliability(torch.full((1000,), 0.99), torch.arange(1000) % 2 == 0)["ece"] == pytest.approx(0.49)


def test_temperature_scaling_finds_the_overconfidence():
    generator = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(5000, 10, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator)[:, 0]
    # A model whose logits are 3x too large is over-confident; dividing by T = 3 undoes it.
    assert look.fit_temperature(3 * true_logits, labels) == pytest.approx(3.0, rel=0.15)
    assert look.fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.15)


def test_pca_keeps_a_plane_and_clusters_separate():
    generator = torch.Generator().manual_seed(0)
    plane = torch.randn(500, 2, generator=generator) @ torch.randn(2, 12, generator=generator)  # 2-D data in 12-D
    points, kept = look.pca_2d(plane + 5)
    assert points.shape == (500, 2) and kept == pytest.approx(1.0, abs=1e-4)
    labels = torch.arange(300) % 3
    clusters = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])[labels] + 0.5 * torch.randn(300, 2, generator=generator)
    assert look.centroid_accuracy(clusters, labels) == 1.0
    assert look.centroid_accuracy(torch.randn(300, 2, generator=generator), labels) < 0.6


def test_last_hidden_features_are_what_fc2_reads():
    mlp = train.SimpleNN().eval()
    model = look.RawPixels(mlp, mean=0.1, std=0.3)
    images = torch.rand(7, 1, 28, 28)
    features = look.last_hidden_features(model, images)
    assert features.shape == (7, 128)
    assert torch.allclose(features, torch.relu(mlp.fc1(((images - 0.1) / 0.3).flatten(1))), atol=1e-6)
    assert look.last_hidden_features(look.RawPixels(cnn.CNN().eval(), mean=0, std=1), images).shape == (7, 128)


def test_bottleneck_passes_through_two_numbers():
    model = look.Bottleneck(mean=0.1, std=0.3)
    images = torch.rand(5, 1, 28, 28)
    assert model.encode(images).shape == (5, 2) and model(images).shape == (5, 10)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 2  # straight boundaries


def test_07_without_checkpoints_says_which_lessons_to_run(tmp_path):
    with pytest.raises(dl_utils.CourseError) as caught:
        look.main(["--out-dir", str(tmp_path)])
    message = str(caught.value)
    assert "03_train_mnist.py" in message and "06_cnn_mnist.py" in message and str(tmp_path) in message


def test_07_on_the_tiny_mnist(tiny_mnist, tmp_path):
    common = ["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu"]
    train.main(common + ["--epochs", "2"])
    # 06's CNN trained for 1 epoch, without 06's own eight figures (they would double this test's time)
    data = dl_utils.load_mnist_data(tiny_mnist)
    model = cnn.CNN()
    dl_utils.train_model(model, data.train_loader, data.val_loader, loss_fn=nn.CrossEntropyLoss(),
                         optimizer=torch.optim.Adam(model.parameters(), lr=3e-3), epochs=1, device="cpu")
    dl_utils.save_checkpoint(tmp_path / "cnn_model.pth", model=model, arch="CNN", model_config={"dropout": 0.25},
                             hyperparameters={}, metrics={"test_accuracy": 0.0}, normalization=data.normalization)
    results = look.main(common + ["--quick"])
    for name in ("mlp_weights", "saliency", "feature_space", "decision_boundary", "confidence", "fgsm_vs_epsilon"):
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert image.shape[1] >= 800 and image.std() > 0.01, f"{name}.png looks empty"
    saved = json.loads((tmp_path / "07_look_inside.json").read_text())
    assert set(saved["models"]) == {"MLP", "CNN"}
    for name, measured in saved["models"].items():
        assert 0 < measured["ink_area"] < 0.5  # bars cover a small part of the image
        assert measured["saliency_on_ink"] > measured["ink_area"]  # both models look at the bars, not the noise
        assert 0 <= measured["expected_calibration_error"] < 0.5
        assert list(measured["fgsm_accuracy"]) == [f"{e:g}" for e in look.EPSILONS]
        # epsilon 0 changes no pixel: the accuracy of the model itself on the 200 tiny test digits
        assert measured["fgsm_accuracy"]["0"] == pytest.approx(measured["test_accuracy"])
        assert measured["fgsm_accuracy"]["0.3"] < measured["fgsm_accuracy"]["0"]
    assert saved["settings"]["epochs"] == 1 and saved["settings"]["subset"] == dl_utils.QUICK_SUBSET  # --quick
    assert saved["bottleneck"]["epochs"] == 1
    assert set(saved["timing"]) == {"load", "weights", "saliency", "features", "boundary", "confidence", "fgsm"}


def test_a_neuron_that_never_fires_is_found_dead():
    mlp = train.SimpleNN().eval()
    with torch.no_grad():
        mlp.fc1.bias.fill_(100.0)  # every neuron fires on every image ...
        mlp.fc1.bias[[3, 77]] = -100.0  # ... except these two
    assert look.dead_neurons(look.RawPixels(mlp, mean=0.1, std=0.3), torch.rand(20, 1, 28, 28)) == [3, 77]
