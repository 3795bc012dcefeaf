"""Tests for data augmentation and FGSM adversarial examples, the lesson helpers of 06_cnn_mnist.py."""

import pytest
import torch
from torch import nn

import dl_utils
from conftest import learner_photo, load_script

lesson06 = load_script("06_cnn_mnist")  # AugmentedLoader and fgsm_attack live next to the lesson that explains them


def test_augmentation_keeps_shapes_and_is_identity_when_switched_off():
    images = torch.randn(6, 1, 28, 28)
    loader = dl_utils.InMemoryLoader(images, torch.arange(6), batch_size=4, shuffle=False)
    still = lesson06.AugmentedLoader(loader, max_degrees=0, max_shift=0)
    assert len(still) == len(loader) == 2 and still.dataset is loader.dataset
    for (a, la), (b, lb) in zip(still, loader):
        assert a.shape == b.shape and torch.equal(la, lb)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_augmentation_moves_the_digit_but_keeps_the_background():
    image = torch.full((1, 1, 28, 28), -0.5)  # background value of a normalised image
    image[0, 0, 10:18, 12:16] = 2.0  # a bright bar
    loader = dl_utils.InMemoryLoader(image.repeat(8, 1, 1, 1), torch.zeros(8, dtype=torch.long),
                                     batch_size=8, shuffle=False)
    moved, _ = next(iter(lesson06.AugmentedLoader(loader, max_degrees=15, max_shift=2)))
    assert (moved - image).abs().amax(dim=(1, 2, 3)).min() > 0.1  # every image changed
    assert moved[:, :, 0, :].sub(-0.5).abs().max() < 1e-5  # the border is still background
    assert moved.amax() <= 2.0 + 1e-5 and moved.amin() >= -0.5 - 1e-5  # interpolation adds no new extremes


def test_fgsm_stays_within_epsilon_and_hurts_a_trained_model(tiny_mnist):
    SimpleNN = load_script("03_train_mnist").SimpleNN
    data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32)
    dl_utils.set_seed(0)
    model = SimpleNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        dl_utils.train_epoch(model, data.train_loader, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer)
    images, labels = data.test_loader.images, data.test_loader.labels
    epsilon = 0.25
    adversarial = lesson06.fgsm_attack(model, images, labels, epsilon=epsilon, mean=data.mean, std=data.std)
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


def test_06_augment_adversarial_and_own_digit(tiny_mnist, tmp_path):
    cnn = lesson06
    learner_photo(dl_utils.load_mnist_data(tiny_mnist), 0, tmp_path / "digit.png", size=280)
    results = cnn.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--epochs", "2",
                        "--augment", "--image", str(tmp_path / "digit.png")])
    assert results["hyperparameters"]["augment"] is True
    assert 0 <= results["fgsm_test_accuracy"] <= results["test_accuracy"]
    assert (tmp_path / "adversarial_example.png").stat().st_size > 10_000
    assert (tmp_path / "own_digit.png").stat().st_size > 10_000
    assert 0 <= results["image_prediction"] <= 9 and 0.1 <= results["image_confidence"] <= 1
