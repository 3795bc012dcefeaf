"""FGSM at growing strength, against the MLP and the CNN: 07's step 7.

07_look_inside.py points here and runs `run` below as its step 7; 07's
--epsilons and --attacked are this experiment's settings.

Run it
    python 07_look_inside.py                            # writes fgsm_vs_epsilon.png among 07's figures
    python 07_look_inside.py --epsilons 0 0.02 0.04     # gentler attacks
    python 07_look_inside.py --attacked 500             # fewer digits per epsilon: faster

Why a file of its own: 07 looks inside the trained networks; this attacks
them from the outside. 06 taught the attack (dl_utils.fgsm_attack is its
code) at one epsilon; here it is repeated at several, for both models. It
uses dl_utils and libraries, never a lesson.
"""

import matplotlib.pyplot as plt
import torch
from torch import nn

import dl_utils


# Every pixel moves by epsilon (in 0..1 brightness) in the direction that
# raises the loss: x + epsilon * sign(d loss / d x). 07's models take raw
# pixels (they normalise inside), so the attack sees mean 0 and std 1.
def fgsm_accuracy(model: nn.Module, images, labels, epsilons, batch: int = 500) -> dict:
    """{epsilon: accuracy on the images after the attack}, attacking `batch` images at a time."""
    result = {}
    for epsilon in epsilons:
        right = 0
        for i in range(0, len(images), batch):
            attacked = dl_utils.fgsm_attack(model, images[i:i + batch], labels[i:i + batch], epsilon=epsilon,
                                            mean=0.0, std=1.0)
            with torch.no_grad():
                right += int((model(attacked).argmax(1) == labels[i:i + batch]).sum())
        result[f"{epsilon:g}"] = right / len(images)
    return result


def plot_fgsm(models: dict, curves: dict, epsilons, image, label: int, path, *, n_attacked: int, colors: dict,
              made: str, show: bool):
    fig = plt.figure(figsize=(13, 4.4 + 1.7 * len(models)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.4, 1.6 * len(models) / 2 + 0.4])
    ax = top.subplots()
    for name, curve in curves.items():
        ax.plot([float(e) for e in curve], [100 * a for a in curve.values()], "o-", color=colors[name], label=name)
    ax.set(title=f"Test accuracy under FGSM ({n_attacked:,} test digits attacked at each epsilon)\n07 settings: {made}",
           xlabel="epsilon: how far each pixel may move (fraction of full brightness)", ylabel="accuracy (%)",
           ylim=(0, 101), xticks=list(epsilons))
    ax.axhline(10, color="gray", linestyle=":", label="guessing (10%)")
    ax.grid(alpha=0.3)
    ax.legend()
    rows = bottom.subplots(len(models), len(epsilons), squeeze=False)
    for r, (name, model) in enumerate(models.items()):
        for c, epsilon in enumerate(epsilons):
            attacked = dl_utils.fgsm_attack(model, image[None], torch.tensor([label], device=image.device),
                                            epsilon=epsilon, mean=0.0, std=1.0)
            with torch.no_grad():
                probs = torch.softmax(model(attacked), 1)[0].cpu()
            rows[r, c].imshow(attacked[0, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            rows[r, c].set_title(f"eps {epsilon:g}: {name} says {int(probs.argmax())} ({100 * probs.max():.0f}%)",
                                 fontsize=8, color="tab:green" if int(probs.argmax()) == label else "tab:red")
            rows[r, c].axis("off")
    bottom.suptitle(f"The same test digit (a {label}) attacked against each model (green = still right, "
                    "red = fooled)", fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


def run(models: dict, images, labels, args, *, example: tuple, colors: dict, made: str) -> dict:
    """Accuracy under FGSM at each of args.epsilons, per model; fgsm_vs_epsilon.png attacks example = (image, label)."""
    curves = {name: fgsm_accuracy(model, images, labels, args.epsilons) for name, model in models.items()}
    for name, curve in curves.items():
        print(f"{name}: " + "  ".join(f"eps {eps}: {100 * acc:.1f}%" for eps, acc in curve.items()))
    plot_fgsm(models, curves, args.epsilons, *example, args.out_dir / "fgsm_vs_epsilon.png", n_attacked=len(images),
              colors=colors, made=made, show=args.show)
    print("fgsm_vs_epsilon.png: the attacked digit stays plainly readable to you long after the model changes "
          "its answer.")
    return {name: {"fgsm_accuracy": curve} for name, curve in curves.items()}
