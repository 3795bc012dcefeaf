"""07_look_inside.py and its three side experiments (extras/decision_boundary.py, calibration.py,
fgsm_sweep.py): each analysis on hand-made inputs whose answer is known, and the lesson on the tiny MNIST,
reading checkpoints made here with the toolbox's own SimpleNN and CNN (07 needs no other lesson)."""

import json

import pytest
import torch
from torch import nn

import dl_utils
from conftest import assert_png, load_script
from extras import calibration, decision_boundary, fgsm_sweep

look = load_script("07_look_inside")


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
    measured = calibration.reliability(confidence, correct)
    assert measured["ece"] < 0.015  # sampling noise only: about 0.4% per bin of 3,333
    assert len(measured["bins"]) == calibration.N_BINS
    assert sum(b["count"] for b in measured["bins"]) == 50_000
    # An over-confident one: always 99% sure, right half the time.
    assert calibration.reliability(torch.full((1000,), 0.99), torch.arange(1000) % 2 == 0)["ece"] == pytest.approx(0.49)


def test_temperature_scaling_finds_the_overconfidence():
    generator = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(5000, 10, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator)[:, 0]
    # A model whose logits are 3x too large is over-confident; dividing by T = 3 undoes it.
    assert calibration.fit_temperature(3 * true_logits, labels) == pytest.approx(3.0, rel=0.15)
    assert calibration.fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.15)


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
    mlp = dl_utils.SimpleNN().eval()
    model = look.RawPixels(mlp, mean=0.1, std=0.3)
    images = torch.rand(7, 1, 28, 28)
    features = look.last_hidden_features(model, images)
    assert features.shape == (7, 128)
    assert torch.allclose(features, torch.relu(mlp.fc1(((images - 0.1) / 0.3).flatten(1))), atol=1e-6)
    assert look.last_hidden_features(look.RawPixels(dl_utils.CNN().eval(), mean=0, std=1), images).shape == (7, 128)


def test_a_neuron_that_never_fires_is_found_dead():
    mlp = dl_utils.SimpleNN().eval()
    with torch.no_grad():
        mlp.fc1.bias.fill_(100.0)  # every neuron fires on every image ...
        mlp.fc1.bias[[3, 77]] = -100.0  # ... except these two
    assert look.dead_neurons(look.RawPixels(mlp, mean=0.1, std=0.3), torch.rand(20, 1, 28, 28)) == [3, 77]


def test_bottleneck_passes_through_two_numbers():
    model = decision_boundary.Bottleneck(mean=0.1, std=0.3)
    images = torch.rand(5, 1, 28, 28)
    assert model.encode(images).shape == (5, 2) and model(images).shape == (5, 10)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 2  # straight boundaries


def test_fgsm_accuracy_of_a_one_pixel_model_falls_as_worked_out_by_hand():
    # OnePixel scores pixel p times -2 ... +2: p > 0 reads 9, p = 0 ties every class and reads 0 (the first).
    images = torch.zeros(40, 1, 28, 28)
    images[:20, 0, 10, 17] = 1.0  # 20 lit 9s and 20 dark 0s, all read right
    labels = torch.tensor([9] * 20 + [0] * 20)
    accuracy = fgsm_sweep.fgsm_accuracy(OnePixel().eval(), images, labels, [0.0, 0.6, 1.0])
    # The loss falls for a lit 9 as p rises, and for a dark 0 as p falls: the attack dims the 9s and lights
    # the 0s. At 0.6 the 9s (now 0.4) are still read 9, the 0s (now 0.6) become 9; at 1.0 both flip.
    assert accuracy == {"0": 1.0, "0.6": 0.5, "1": 0.0}


def test_07_without_checkpoints_says_which_lessons_to_run(tmp_path):
    with pytest.raises(dl_utils.CourseError) as caught:
        look.main(["--out-dir", str(tmp_path)])
    message = str(caught.value)
    assert "03_train_mnist.py" in message and "06_cnn_mnist.py" in message and str(tmp_path) in message


def test_a_checkpoint_of_another_shape_is_one_clear_paragraph(tmp_path):
    model = dl_utils.SimpleNN(hidden=16)
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=model, arch="SimpleNN", model_config={"hidden": 32},
                             hyperparameters={}, metrics={}, normalization={"mean": 0.13, "std": 0.31})
    with pytest.raises(dl_utils.CourseError, match=r"fc1.weight: saved \(16, 784\), your model \(32, 784\)"):
        look.load_models(tmp_path, "cpu")


def save_trained(model, arch: str, config: dict, data, path, *, epochs: int):
    """What 03 and 06 leave behind, made here with the toolbox's copies of their classes and loop."""
    torch.manual_seed(0)
    dl_utils.fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(),
                 torch.optim.Adam(model.parameters(), lr=3e-3), epochs=epochs)
    dl_utils.save_checkpoint(path, model=model, arch=arch, model_config=config, hyperparameters={"pixels": "natural"},
                             metrics={"test_accuracy": 0.5}, normalization=data.normalization)


def test_07_on_the_tiny_mnist(tiny_mnist, tmp_path, capsys):
    data = dl_utils.load_mnist_data(tiny_mnist)
    save_trained(dl_utils.SimpleNN(hidden=32), "SimpleNN", {"hidden": 32}, data, tmp_path / "mnist_model.pth", epochs=3)
    save_trained(dl_utils.CNN(), "CNN", {"dropout": 0.25}, data, tmp_path / "cnn_model.pth", epochs=1)
    results = look.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu", "--quick"])
    printed = capsys.readouterr().out
    for step in range(1, 8):
        assert f"=== {step}. " in printed  # every step announced the toolbox's one way
    for name in ("mlp_weights", "saliency", "feature_space", "decision_boundary", "confidence", "fgsm_vs_epsilon"):
        assert_png(tmp_path / f"{name}.png", min_width=800)
    saved = json.loads((tmp_path / "07_look_inside.json").read_text())
    assert saved["models"] == json.loads(json.dumps(results["models"]))
    assert set(saved["models"]) == {"MLP", "CNN"}
    assert saved["models"]["MLP"]["dead_neuron_count"] == len(saved["models"]["MLP"]["dead_neurons"]) < 32
    for name, measured in saved["models"].items():
        assert 0 < measured["ink_area"] < 0.5  # bars cover a small part of the image
        assert measured["saliency_on_ink"] > measured["ink_area"]  # both models look at the bars, not the noise
        assert measured["pca_centroid_accuracy_after"] > 0.5
        assert 0 <= measured["expected_calibration_error"] < 0.5 and measured["temperature"] > 0
        assert list(measured["fgsm_accuracy"]) == [f"{e:g}" for e in look.EPSILONS]
        # epsilon 0 changes no pixel: the accuracy of the model itself on the 200 tiny test digits
        assert measured["fgsm_accuracy"]["0"] == pytest.approx(measured["test_accuracy"])
        assert measured["fgsm_accuracy"]["0.3"] < measured["fgsm_accuracy"]["0"]
    # --quick: 1 epoch on 5,000 images for the 2-D network, 20 saliency digits; all recorded as run
    settings = saved["settings"]
    assert (settings["epochs"], settings["subset"], settings["saliency_digits"]) == (1, dl_utils.QUICK_SUBSET, 20)
    assert settings["batch_size"] == dl_utils.BATCH_SIZE and settings["lr"] == look.LR
    assert saved["bottleneck"]["epochs"] == 1 and 0 <= saved["bottleneck"]["test_accuracy"] <= 1
    assert "Epoch 1/1" in printed  # the 2-D network trained with the toolbox's fit, which prints each epoch


def test_07_with_the_mlp_only_and_its_own_epsilons(tiny_mnist, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(dl_utils, "finish_figure", lambda fig, path, show=False: plt.close(fig))  # the test above saves them
    data = dl_utils.load_mnist_data(tiny_mnist)
    save_trained(dl_utils.SimpleNN(hidden=16), "SimpleNN", {"hidden": 16}, data, tmp_path / "mnist_model.pth", epochs=1)
    results = look.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu", "--quick",
                         "--epsilons", "0", "0.2", "--attacked", "50"])
    assert set(results["models"]) == {"MLP"}
    assert list(results["models"]["MLP"]["fgsm_accuracy"]) == ["0", "0.2"]
    assert results["settings"]["attacked"] == 50 and results["settings"]["epsilons"] == [0.0, 0.2]


def test_07_with_the_cnn_only_names_only_the_files_it_wrote(tiny_mnist, tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(dl_utils, "finish_figure", lambda fig, path, show=False: plt.close(fig))  # saved above
    data = dl_utils.load_mnist_data(tiny_mnist)
    save_trained(dl_utils.CNN(), "CNN", {"dropout": 0.25}, data, tmp_path / "cnn_model.pth", epochs=1)
    look.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--device", "cpu", "--quick",
               "--epsilons", "0", "0.2", "--attacked", "50"])
    saved_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Saved ")][-1]
    assert "mlp_weights.png" not in saved_line and "saliency.png" in saved_line  # no MLP, no weight picture
