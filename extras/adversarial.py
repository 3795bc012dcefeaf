"""06's FGSM attack on the whole test set, and adversarial_example.png.

06_cnn_mnist.py points here: its section 8 writes the attack itself,
`fgsm_attack` (x + epsilon * sign(d loss / d x)), and its step 8 hands it to
`fool_it` below, which attacks all 10,000 test digits, measures how far the
accuracy falls, and draws the first digit the attack flips.

Run it
    python 06_cnn_mnist.py                     # epsilon 0.1: a faint change to every pixel
    python 06_cnn_mnist.py --epsilon 0.05      # fainter: how many digits still flip?

Why a file of its own: the lesson is the attack (one backward pass, asked
about the INPUT instead of the weights), which stays in 06; this is the
measuring and the three-panel figure around it, about 45 lines that come
after the CNN's own story. It uses dl_utils and libraries, never a lesson:
the attack arrives as an argument.
"""

from pathlib import Path

import torch

import dl_utils
import matplotlib.pyplot as plt  # after dl_utils, which picks the file-only backend when there is no screen


def fool_it(model, data, predictions: dict, attack, *, epsilon: float, test_accuracy: float, device,
            out_dir: Path, show: bool = False, note: str = "defaults") -> float:
    """Attack every test digit with `attack` (06's fgsm_attack); returns the test accuracy on the attacked digits.

    `predictions`: 06's test probabilities (N, 10) and labels (N,), to find a
    digit that was right before the attack and wrong after it.
    """
    probabilities, labels = predictions["probabilities"], predictions["labels"]
    # One test batch (1,000 images) at a time: a backward pass through all
    # 10,000 at once would hold every layer's activations, about 5 GB.
    adversarial = torch.cat([attack(model, batch, batch_labels, epsilon=epsilon, mean=data.mean, std=data.std)
                             for batch, batch_labels in data.test_loader])
    adversarial_probs, _ = dl_utils.collect_predictions(
        model, dl_utils.InMemoryLoader(adversarial, data.test_loader.labels, batch_size=1000, shuffle=False),
        device=device)
    fooled = (adversarial_probs.argmax(1) != labels) & (probabilities.argmax(1) == labels)
    adversarial_accuracy = (adversarial_probs.argmax(1) == labels).float().mean().item()
    print(f"FGSM with epsilon {epsilon:g} (each pixel moves by at most {epsilon:g} of full brightness): "
          f"test accuracy falls from {100 * test_accuracy:.2f}% to {100 * adversarial_accuracy:.2f}%")
    index = int(fooled.nonzero()[0]) if fooled.any() else 0  # the first digit it fools (else digit 0)
    plot_adversarial(data.test_loader.images[index].cpu(), adversarial[index].cpu(), probabilities[index],
                     adversarial_probs[index], int(labels[index]), epsilon,
                     Path(out_dir) / "adversarial_example.png", mean=data.mean, std=data.std, show=show, note=note)
    return adversarial_accuracy


def plot_adversarial(image, adversarial, probs, adversarial_probs, label: int, epsilon: float, path, *,
                     mean: float, std: float, show: bool, note: str = "defaults") -> Path:
    """Original | perturbation x 10 | adversarial image, with both predictions."""
    original = (image[0] * std + mean).numpy()  # normalised -> pixels in 0..1
    attacked = (adversarial[0] * std + mean).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.8), layout="constrained")  # room for the two-line title
    panels = [
        (original, "gray", (0, 1), f"original (true {label})\nCNN: {int(probs.argmax())} ({100 * probs.max():.1f}%)"),
        ((attacked - original) * 10, "seismic", (-1, 1),
         f"perturbation x 10: red brighter, blue darker\n(each pixel moved by at most {epsilon:g})"),
        (attacked, "gray", (0, 1), f"original + perturbation\nCNN: {int(adversarial_probs.argmax())} "
                                   f"({100 * adversarial_probs.max():.1f}%)"),
    ]
    for ax, (picture, cmap, (low, high), title) in zip(axes, panels):
        ax.imshow(picture, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle("An adversarial example (FGSM): a faint change, chosen with the gradient, flips the answer\n"
                 f"(the CNN trained with settings: {note})")
    return dl_utils.finish_figure(fig, path, show=show)
