"""Tests for data augmentation and FGSM adversarial examples, the side experiments of 06_cnn_mnist.py.

fgsm_attack is written in 06 and tested here in its toolbox copy, dl_utils.fgsm_attack (tests/test_toolbox.py
checks the copy is 06's own code). AugmentedLoader lives in extras/augment.py, which 06's --augment calls.
"""

import pytest
import torch
from torch import nn

import dl_utils
from conftest import learner_photo, load_script
from extras import augment


def test_augmentation_keeps_shapes_and_is_identity_when_switched_off():
    images = torch.randn(6, 1, 28, 28)
    loader = dl_utils.InMemoryLoader(images, torch.arange(6), batch_size=4, shuffle=False)
    still = augment.AugmentedLoader(loader, max_degrees=0, max_shift=0)
    assert len(still) == len(loader) == 2 and len(still.dataset) == len(loader.dataset) == 6
    for (a, la), (b, lb) in zip(still, loader):
        assert a.shape == b.shape and torch.equal(la, lb)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_augmentation_moves_the_digit_but_keeps_the_background():
    image = torch.full((1, 1, 28, 28), -0.5)  # background value of a normalised image
    image[0, 0, 10:18, 12:16] = 2.0  # a bright bar
    loader = dl_utils.InMemoryLoader(image.repeat(8, 1, 1, 1), torch.zeros(8, dtype=torch.long),
                                     batch_size=8, shuffle=False)
    moved, _ = next(iter(augment.AugmentedLoader(loader, max_degrees=15, max_shift=2)))
    assert (moved - image).abs().amax(dim=(1, 2, 3)).min() > 0.1  # every image changed
    assert moved[:, :, 0, :].sub(-0.5).abs().max() < 1e-5  # the border is still background
    assert moved.amax() <= 2.0 + 1e-5 and moved.amin() >= -0.5 - 1e-5  # interpolation adds no new extremes
    # seeded: the same seed moves the digits the same way, another seed differently
    again, _ = next(iter(augment.AugmentedLoader(loader, max_degrees=15, max_shift=2)))
    other, _ = next(iter(augment.AugmentedLoader(loader, max_degrees=15, max_shift=2, seed=1)))
    assert torch.equal(moved, again) and not torch.equal(moved, other)


def test_fgsm_stays_within_epsilon_and_hurts_a_trained_model(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    dl_utils.set_seed(0)
    model = dl_utils.SimpleNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        dl_utils.train_one_epoch(model, data.train_loader, nn.CrossEntropyLoss(), optimizer)
    images, labels = data.test_loader.images, data.test_loader.labels
    untouched = dl_utils.fgsm_attack(model, images, labels, epsilon=0.0, mean=data.mean, std=data.std)
    torch.testing.assert_close(untouched, images)  # epsilon 0: no change (the images are valid pixels already)
    epsilon = 0.25
    adversarial = dl_utils.fgsm_attack(model, images, labels, epsilon=epsilon, mean=data.mean, std=data.std)
    pixels = images * data.std + data.mean
    adversarial_pixels = adversarial * data.std + data.mean
    assert (adversarial_pixels - pixels).abs().max() <= epsilon + 1e-5
    assert adversarial_pixels.min() >= -1e-5 and adversarial_pixels.max() <= 1 + 1e-5
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean()
        attacked = (model(adversarial).argmax(1) == labels).float().mean()
    assert clean > 0.9 and attacked < clean - 0.2
    # The attack follows the gradient: a random perturbation of the same size hurts far less.
    noise = (pixels + epsilon * torch.randn_like(pixels).sign()).clamp(0, 1)
    with torch.no_grad():
        random_acc = (model((noise - data.mean) / data.std).argmax(1) == labels).float().mean()
    assert random_acc > attacked


def test_06_augment_adversarial_and_own_digit(tiny_mnist, tmp_path, monkeypatch):
    cnn = load_script("06_cnn_mnist")
    augmented = []  # the batches 06's --augment really trained on

    class Watched(augment.AugmentedLoader):
        def augment(self, images):
            augmented.append(len(images))
            return super().augment(images)

    monkeypatch.setattr(augment, "AugmentedLoader", Watched)
    learner_photo(dl_utils.load_mnist_data(tiny_mnist), 0, tmp_path / "digit.png", size=280)
    results = cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "1",
                        "--augment", "--image", str(tmp_path / "digit.png")])
    assert results["hyperparameters"]["augment"] is True
    n_train = len(dl_utils.load_mnist_data(tiny_mnist).train_loader.labels)
    assert sum(augmented) == n_train  # every training image of the epoch, augmented; validation and test: none
    assert 0 <= results["fgsm_test_accuracy"] <= results["test_accuracy"]
    assert (tmp_path / "adversarial_example.png").stat().st_size > 10_000
    assert (tmp_path / "own_digit.png").stat().st_size > 10_000
    assert 0 <= results["image_prediction"] <= 9 and 0.1 <= results["image_confidence"] <= 1
