"""Break it on purpose: vanishing and exploding gradients in a 15-layer network, and the fixes.

05_experiment_architectures.py points here: with `--gradients` it loads the
data (its section 1), then calls `run` below instead of comparing networks.
Six deep MLPs (sigmoid, tanh and ReLU with PyTorch's default init; ReLU with
a too-large init; ReLU with Kaiming's init; sigmoid with batch norm) are
trained briefly with plain SGD, and every layer's gradient is measured.

Run it
    python 05_experiment_architectures.py --gradients                   # 15 layers, 400 steps each
    python 05_experiment_architectures.py --gradients --depth 30 --steps 200

Writes gradient_norms.png and gradients.json.

Why a file of its own: it builds other networks (deep, narrow, with an
init of their own) and trains them by steps, not epochs; in 05 it sat
between the comparison and its main(). It uses dl_utils and libraries,
never a lesson.
"""

import argparse
import math
import statistics

import torch
from torch import nn

import dl_utils

DEPTH = 15  # Linear layers: a factor of 0.5 per layer is 0.5**14 = 0.00006 after 15 of them
WIDTH = 64  # neurons per hidden layer: small, so 6 networks x 400 steps take seconds
STEPS = 400  # SGD steps per network: enough to separate "learns" from "stuck at 2.30"
GRADIENT_LR = 0.02  # SGD with momentum 0.9; at 0.05 even the Kaiming network diverged within 300 steps
GRADIENT_BATCH = 256  # the fixed batch on which every layer's gradient norm is measured
# (activation, init, batch norm): the three problems, then the three fixes
CONFIGS = [("sigmoid", "default", False), ("tanh", "default", False), ("relu", "default", False),
           ("relu", "large", False), ("relu", "kaiming", False), ("sigmoid", "default", True)]


def depth_type(text: str) -> int:
    """argparse type: the number of Linear layers of the deep MLP, at least 2."""
    value = dl_utils.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a deep MLP needs at least 2 Linear layers (one hidden layer), got {value}")
    return value


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--gradients: vanishing and exploding gradients (extras/gradients.py)")
    group.add_argument("--gradients", action="store_true",
                       help="instead of comparing networks: build deep MLPs (sigmoid, tanh, ReLU; default, Kaiming "
                            "and too-large init; batch norm), plot every layer's gradient norm and the training "
                            "curves (gradient_norms.png)")
    group.add_argument("--depth", type=depth_type, default=DEPTH,
                       help="Linear layers in the deep MLP, at least 2 (a factor of 0.5 per layer is 0.5**14 = "
                            "0.00006 after 15)")
    group.add_argument("--width", type=dl_utils.positive_int, default=WIDTH, help="neurons per hidden layer")
    group.add_argument("--steps", type=dl_utils.positive_int, default=STEPS, help="SGD steps per network")
    group.add_argument("--gradient-lr", type=dl_utils.positive_float, default=GRADIENT_LR,
                       help="SGD's learning rate (momentum 0.9)")


# Backpropagation multiplies, layer after layer, by each layer's weights and
# by the slope of its activation (see "Vanishing & Exploding Gradients").
# If that factor is a bit below 1, the gradient reaching the first layers
# shrinks geometrically with depth (vanishing: those layers barely learn);
# a bit above 1, it grows geometrically (exploding: steps overshoot, NaN).
# Sigmoid's slope is at most 0.25. PyTorch's default init draws weights
# with variance 1 / (3 fan_in), so a Linear layer multiplies the signal's
# mean square by fan_in / (3 fan_in) = 1/3, and ReLU, zeroing half of it,
# by 1/2: x 1/6 per layer. The fixes measured here: Kaiming's init
# (variance 2 / fan_in: x 2 x 1/2 = x 1 per layer) and batch norm (which
# re-scales every layer's output to std 1 on each batch).
ACTIVATION_LAYERS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


class DeepMLP(nn.Module):
    """`depth` Linear layers, 784 -> width -> ... -> width -> 10, an activation (and batch norm) between them."""

    def __init__(self, depth: int, width: int, activation: str, batch_norm: bool = False):
        super().__init__()
        sizes = [28 * 28] + [width] * (depth - 1) + [10]  # depth Linear layers need depth + 1 sizes
        layers = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < depth - 1:  # nothing after the last layer: it gives the 10 logits
                if batch_norm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(ACTIVATION_LAYERS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)

    def linears(self) -> list[nn.Linear]:
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]


def initialise(model: DeepMLP, how: str) -> None:
    """"default": leave PyTorch's init; "kaiming": normal with std sqrt(2 / fan_in), biases 0;
    "large": 1.5 x Kaiming's std, so each ReLU layer multiplies the variance by 1.5^2 = 2.25."""
    if how == "default":
        return
    scale = {"kaiming": 1.0, "large": 1.5}[how]
    for layer in model.linears():
        nn.init.normal_(layer.weight, mean=0.0, std=scale * math.sqrt(2.0 / layer.in_features))
        nn.init.zeros_(layer.bias)


def layer_gradient_norms(model: DeepMLP, images, labels, loss_fn) -> list[float]:
    """The gradient's size (L2 norm) for every Linear layer's weights, first layer first, on one batch."""
    model.zero_grad()
    loss_fn(model(images), labels).backward()
    return [layer.weight.grad.norm().item() for layer in model.linears()]


def gradient_experiment(config: tuple, *, args, data, device, batch) -> dict:
    """Build one deep MLP, measure its per-layer gradients, train it --steps steps, measure again."""
    activation, init, batch_norm = config
    name = f"{activation}, {init} init" + (", batch norm" if batch_norm else "")
    dl_utils.set_seed(args.seed)
    data.train_loader.generator.manual_seed(args.seed)  # the same batches for every network
    model = DeepMLP(args.depth, args.width, activation, batch_norm).to(device)
    initialise(model, init)
    loss_fn = nn.CrossEntropyLoss()
    # Plain SGD on purpose: Adam divides every step by the gradient's own size,
    # which hides (part of) a vanishing gradient; SGD shows it as it is.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.gradient_lr, momentum=0.9)
    model.train()
    at_init = layer_gradient_norms(model, *batch, loss_fn)
    # 03's five steps, counted in steps rather than epochs, stopping at the first NaN.
    losses, diverged_at, step = [], None, 0
    while step < args.steps and diverged_at is None:
        for images, labels in data.train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            if not torch.isfinite(loss):  # exploded: every later step would be NaN too
                diverged_at = step
                break
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step == args.steps:
                break
    after = layer_gradient_norms(model, *batch, loss_fn) if diverged_at is None else None
    val = dl_utils.evaluate(model, data.val_loader, loss_fn)["accuracy"] if diverged_at is None else None
    return {"name": name, "activation": activation, "init": init, "batch_norm": batch_norm,
            "grad_norm_at_init": at_init, "grad_norm_after": after,
            "first_over_last_at_init": at_init[0] / at_init[-1],
            # log10(last / first): how many factors of 10 the gradient lost on its way down to layer 1
            "decades_lost_at_init": math.log10(at_init[-1] / at_init[0]), "train_loss": losses,
            "diverged_at_step": diverged_at, "val_accuracy": val}


def plot_gradients(entries: list[dict], path, *, args, show: bool):
    """gradient_norms.png: per-layer gradient norms at init and after training, and the loss curves."""
    import matplotlib.pyplot as plt

    fig, (ax_init, ax_after, ax_loss) = plt.subplots(1, 3, figsize=(17, 5.4))
    layers = list(range(1, args.depth + 1))
    window = 20  # steps per point of the loss curve: one batch's loss is noisy
    for i, entry in enumerate(entries):
        style = dict(color=f"C{i}", linestyle="--" if entry["batch_norm"] else "-", marker="o", markersize=3,
                     label=entry["name"])
        ax_init.plot(layers, entry["grad_norm_at_init"], **style)
        if entry["grad_norm_after"] is not None:
            ax_after.plot(layers, entry["grad_norm_after"], **style)
        losses = entry["train_loss"]
        smooth = [statistics.mean(losses[j:j + window]) for j in range(0, len(losses) - window + 1, window)]
        ax_loss.plot([window * (j + 1) for j in range(len(smooth))], smooth, **{**style, "marker": None})
        if entry["diverged_at_step"] is not None:
            ax_loss.plot([max(entry["diverged_at_step"], 1)], [math.log(10)], "x", color=f"C{i}", markersize=12)
    for ax, when in ((ax_init, "at initialisation"), (ax_after, f"after {args.steps} SGD steps")):
        ax.set_yscale("log")  # the norms differ by factors of thousands
        ax.set(title=f"Gradient norm per layer, {when}", xlabel="layer (1 = next to the input)",
               ylabel="||d loss / d weights|| (log scale)")
    ax_loss.axhline(math.log(10), color="grey", linestyle=":", label="ln 10 = 2.30: guessing")
    ax_loss.set(title=f"Training loss (mean of {window} steps; x: diverged)", xlabel="step",
                ylabel="cross-entropy loss", ylim=(0, 2.6))
    for ax in (ax_init, ax_after, ax_loss):
        ax.grid(alpha=0.3, which="both")
    ax_loss.legend(fontsize=8)
    fig.suptitle(f"{args.depth}-layer MLP (width {args.width}), SGD lr {args.gradient_lr:g} momentum 0.9, batch "
                 f"{args.batch_size}" + (f", {args.subset:,} images" if args.subset else "")
                 + ": flat lines = healthy gradients, sloped = vanishing or exploding")
    return dl_utils.finish_figure(fig, path, show=show)


def run(args, data, device) -> dict:
    """Train every CONFIGS network briefly; print and plot its per-layer gradient norms."""
    dl_utils.step(f"2. Vanishing and exploding gradients: {args.depth} Linear layers of width {args.width}, "
                  f"{args.steps} SGD steps (lr {args.gradient_lr:g}, momentum 0.9) each")
    batch = (data.train_loader.images[:GRADIENT_BATCH], data.train_loader.labels[:GRADIENT_BATCH])  # fixed batch
    entries = []
    print(f"{'network':34s} {'gradient norm: layer 1':>22s} {'layer ' + str(args.depth):>9s}   validation accuracy")
    for config in CONFIGS:
        entry = gradient_experiment(config, args=args, data=data, device=device, batch=batch)
        entries.append(entry)
        outcome = (f"diverged (NaN) at step {entry['diverged_at_step']}" if entry["diverged_at_step"] is not None
                   else f"{100 * entry['val_accuracy']:.2f}%")
        norms = entry["grad_norm_at_init"]
        print(f"{entry['name']:34s} {norms[0]:22.2g} {norms[-1]:9.2g}   {outcome}")
    kaiming = [e for e in entries if (e["activation"], e["init"], e["batch_norm"]) == ("relu", "kaiming", False)]
    for entry in entries:  # layer 1's gradient against the healthy network's: far above 1 = exploding
        healthy = kaiming[0]["grad_norm_at_init"][0] if kaiming else None
        entry["layer1_vs_kaiming"] = entry["grad_norm_at_init"][0] / healthy if healthy else None
    print(f"(gradient norms at initialisation. Layer 1 far below layer {args.depth}: the first layers get\n"
          " almost no gradient, vanishing. Every layer far above the Kaiming network's: exploding.\n"
          f" Validation accuracy after {args.steps} steps; chance is 10%)")
    path = plot_gradients(entries, args.out_dir / "gradient_norms.png", args=args, show=args.show)
    results = {"script": "05_experiment_architectures", "mode": "gradients", "depth": args.depth,
               "width": args.width, "steps": args.steps, "lr": args.gradient_lr, "batch_size": args.batch_size,
               "subset": args.subset, "seed": args.seed, "device": dl_utils.device_name(device),
               "networks": entries}
    dl_utils.save_results(args.out_dir, "gradients", results)
    print(f"Saved {path.name} and gradients.json in {args.out_dir}")
    return results
