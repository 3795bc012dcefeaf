"""07 - Look inside what you built: weights, saliency, features, boundaries, confidence, robustness.

What you will learn
  * what each hidden neuron of 03's MLP looks for: its 784 weights drawn as a 28x28 picture
  * which pixels drive a decision, asked two ways: the gradient (a tiny change) and occlusion
    (cover a patch and measure the drop), for the MLP and the CNN side by side
  * how training turns pixels into features in which the digits form clusters (PCA)
  * what decision boundaries look like, in a small network squeezed through 2 numbers
  * whether a network's confidence can be trusted (reliability diagram, calibration error,
    temperature scaling), and how fast accuracy falls as an FGSM attack grows

Run first: 03_train_mnist.py and/or 06_cnn_mnist.py (07 reads mnist_model.pth and cnn_model.pth).

Run it
    python 07_look_inside.py                        # both models, about a minute on a 2-core CPU
    python 07_look_inside.py --quick                # fewer digits, the 2-D network trained 1 epoch: seconds
    python 07_look_inside.py --out-dir outputs/e3   # the checkpoints of a run kept in another folder
    python 07_look_inside.py --data-dir DATA_DIR    # MNIST kept elsewhere

Writes (in outputs/, or --out-dir)
    mlp_weights.png        the MLP's 128 first-layer weight vectors as 28x28 pictures
    saliency.png           which pixels drive three test predictions: gradient x input and occlusion
    feature_space.png      the last hidden layer of each model in 2-D (PCA), before and after training
    decision_boundary.png  a network with a 2-number bottleneck: its plane, coloured by predicted digit
    confidence.png         confidence when right and when wrong; reliability diagram and calibration error
    fgsm_vs_epsilon.png    test accuracy under FGSM for epsilon 0 ... 0.3, MLP against CNN
    07_look_inside.json    the measured results

How long: about 40 s on the course's quiet 2-core CPU (README.md "Results"); --quick: seconds of
computing plus the start-up.
Measured: docs/results/07_look_inside.json (run.wall_seconds, cpu_seconds, load_average).
"""

import argparse
import time

import torch
from torch import nn

import dl_utils

# 06 teaches FGSM; 07 reuses its code rather than copying it.
fgsm_attack = dl_utils.import_script("06_cnn_mnist").fgsm_attack

# ---------------------------------------------------------------------------
# Settings (each has a flag; see --help)
# ---------------------------------------------------------------------------
MODEL_FILES = {"MLP": "mnist_model.pth", "CNN": "cnn_model.pth"}  # what 03 and 06 write in their out-dir
N_SALIENCY = 50  # saliency_on_ink is averaged over the first 50 test digits: the share varies by digit
INK_THRESHOLD = 0.5  # a pixel brighter than half white is ink (MNIST strokes are near 1, background 0)
PATCH = 5  # occlusion: side of the grey square slid over the digit, about a stroke's width
PATCH_VALUE = 0.5  # mid-grey: neither ink (1) nor background (0), so covering anything changes it
N_FEATURES = 2000  # test digits in feature_space.png and decision_boundary.png: clusters, still single dots
EPOCHS = 3  # for the 2-D bottleneck network, the only thing 07 trains: a few seconds per epoch
BATCH_SIZE = 128  # larger than 03's 64: the small network trains in fewer, smoother steps
LEARNING_RATE = 3e-3  # 3x 03's: a 2-number bottleneck learns slowly at 1e-3 in 3 epochs
N_BINS = 15  # reliability diagram: 15 confidence bins of width 0.06 (from 0.1, the least a top-1 can be)
EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # FGSM strengths in pixel units; 06 used 0.1
N_ATTACKED = 2000  # test digits attacked per epsilon: the CNN's backward pass is the slow part
SEED = 0
QUICK_DIGITS = 500  # --quick: features and attacks on 500 test digits, saliency on 20
COLORS = {"MLP": "tab:blue", "CNN": "tab:green"}  # one colour per model in every figure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Look inside the models 03 and 06 trained.")
    # --epochs/--batch-size/--lr/--subset apply to the 2-D bottleneck network, the only training here.
    dl_utils.add_common_args(parser, seed=SEED, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE)
    parser.add_argument("--saliency-digits", type=dl_utils.positive_int, default=N_SALIENCY,
                        help="test digits saliency_on_ink is averaged over (default: %(default)s)")
    parser.add_argument("--attacked", type=dl_utils.positive_int, default=N_ATTACKED,
                        help="test digits attacked with FGSM at each epsilon (default: %(default)s)")
    parser.add_argument("--patch", type=dl_utils.positive_int, default=PATCH,
                        help="side of the occlusion patch in pixels (default: %(default)s)")
    return parser


# ---------------------------------------------------------------------------
# 1. The models, taking raw pixels
# ---------------------------------------------------------------------------
# Each checkpoint knows the normalisation it was trained with. We make it the
# model's first step, so every analysis below works on raw pixels, 0 (black)
# to 1 (white): a saliency is "per unit of brightness", an FGSM epsilon of 0.1
# is a tenth of full brightness, and a grey patch is 0.5, for both models.
class RawPixels(nn.Module):
    def __init__(self, model: nn.Module, *, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28) in [0, 1]
        return self.model((x - self.mean) / self.std)


def load_models(out_dir, device) -> tuple[dict, dict]:
    """{"MLP": model, "CNN": model} for the checkpoints found in out_dir, and a fresh (untrained) copy of each.

    The networks are rebuilt by 04's build_model, from the settings each
    checkpoint stores (model_config), as 04 taught.
    """
    build_model = dl_utils.import_script("04_load_model").build_model
    trained, fresh = {}, {}
    for name, file in MODEL_FILES.items():
        path = out_dir / file
        if not path.is_file():
            continue
        checkpoint = dl_utils.load_checkpoint(path)
        config = checkpoint["model_config"]  # the settings it was trained with, so no mismatch here

        def make(checkpoint=checkpoint, config=config) -> nn.Module:
            return build_model(checkpoint, hidden=config.get("hidden", 128), batch_norm=config.get("batch_norm", False))

        model = make()
        problems = dl_utils.state_dict_mismatches(model, checkpoint["state_dict"])
        if problems:
            raise dl_utils.CourseError(f"{path} does not fit the network its code builds today: "
                                       f"{'; '.join(problems)}. Retrain it (03 or 06) and run 07 again.")
        model.load_state_dict(checkpoint["state_dict"])
        for models, network in ((trained, model), (fresh, make())):
            models[name] = RawPixels(network, **checkpoint["normalization"]).to(device).eval()
        saved = checkpoint["metrics"].get("test_accuracy")
        print(f"{name}: {path} ({checkpoint['arch']}, {dl_utils.count_parameters(model):,} parameters"
              + (f", test accuracy {100 * saved:.2f}% when saved)" if saved is not None else ")"))
    if not trained:
        raise dl_utils.CourseError(
            f"07 looks inside the models that 03 and 06 trained, and found neither {MODEL_FILES['MLP']} nor "
            f"{MODEL_FILES['CNN']} in {out_dir}. Run python 03_train_mnist.py (the MLP) and/or "
            "python 06_cnn_mnist.py (the CNN) first, with the same --out-dir, then run 07 again.")
    return trained, fresh


def logits_of(model: nn.Module, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """The model's raw scores (N, 10) for images (N, 1, 28, 28), 1,000 at a time, on the CPU."""
    with torch.no_grad():
        return torch.cat([model(images[i:i + batch]).cpu() for i in range(0, len(images), batch)])


# ---------------------------------------------------------------------------
# 2. What each hidden neuron looks for (the MLP)
# ---------------------------------------------------------------------------
# Hidden neuron j of the MLP computes relu(w_j . x + b_j): a weighted sum of
# the 784 pixels. Its weight vector w_j has one number per pixel, so it can be
# drawn as a 28x28 picture: red where a bright pixel raises the neuron, blue
# where it lowers it. The neuron fires for digits that look like its red part.
def dead_neurons(mlp: RawPixels, images: torch.Tensor) -> list[int]:
    """Hidden neurons whose input w_j . x + b_j is <= 0 for every image: ReLU outputs 0, so no gradient ever reaches them."""
    with torch.no_grad():
        before_relu = mlp.model.fc1(((images - mlp.mean) / mlp.std).flatten(1))  # (N, hidden)
    return (before_relu <= 0).all(dim=0).nonzero().flatten().tolist()


def plot_mlp_weights(mlp: RawPixels, dead: list, path, *, show: bool):
    """mlp_weights.png: the (hidden, 784) first-layer weights as one mosaic of 28x28 tiles, 16 per row."""
    import matplotlib.pyplot as plt

    weights = mlp.model.fc1.weight.detach().cpu().reshape(-1, 28, 28)  # (128, 784) -> (128, 28, 28)
    # Each neuron on its own symmetric scale (-1 .. 1 = its largest weight): white = 0 in every tile.
    weights = weights / weights.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    columns = 16
    rows = -(-len(weights) // columns)  # ceiling division: 128 neurons -> 8 rows
    mosaic = torch.full((rows * 30, columns * 30), float("nan"))  # 28 pixels + a 2-pixel gap per tile
    for j, tile in enumerate(weights):
        r, c = divmod(j, columns)
        mosaic[r * 30:r * 30 + 28, c * 30:c * 30 + 28] = tile
    fig, ax = plt.subplots(figsize=(14, 7.9))
    image = ax.imshow(mosaic.numpy(), cmap=plt.get_cmap("bwr").with_extremes(bad="#888888"), vmin=-1, vmax=1)
    ax.set_xticks([c * 30 + 14 for c in range(columns)], [str(c) for c in range(columns)], fontsize=8)
    ax.set_yticks([r * 30 + 14 for r in range(rows)], [str(r * columns) for r in range(rows)], fontsize=8)
    ax.set(xlabel="+ column", ylabel="neuron number (first of the row)")
    for j in dead:  # a black frame around each dead neuron
        r, c = divmod(j, columns)
        ax.add_patch(plt.Rectangle((c * 30 - 1.5, r * 30 - 1.5), 30, 30, fill=False, edgecolor="black", linewidth=2))
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="weight / the neuron's largest weight")
    ax.set_title(f"What each of the MLP's {len(weights)} hidden neurons looks for: its 784 first-layer weights as a "
                 "28 x 28 picture\nred = a bright pixel there raises the neuron, blue = lowers it, white = ignored "
                 "(each tile scaled to its own largest weight).\nBlobs and strokes = a pattern it detects. Black frame = "
                 f"dead ({len(dead)}): never active on the test digits, so never trained: still its random start.",
                 fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 3. Which pixels drive the decision: gradient saliency and occlusion
# ---------------------------------------------------------------------------
# Two questions, two methods (see "Saliency, Calibration & Decision
# Boundaries" in ML_CONCEPTS_EXPLAINED.md):
#   gradient: d p(true) / d pixel. "If this pixel got a little brighter, how
#     much would the probability of the right answer change?" One backward
#     pass; local (true for tiny changes only). Times the input, it shows
#     which LIT pixels push the answer up (red) or down (blue).
#   occlusion: cover a PATCH x PATCH square with grey, slide it everywhere,
#     measure how much p(true) drops. "What if this part were hidden?" A real
#     experiment with large changes, one forward pass per position.
def gradient_saliency(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d p(true class) / d pixel, (N, 1, 28, 28), for raw-pixel images (N, 1, 28, 28)."""
    images = images.detach().clone().requires_grad_(True)
    p_true = torch.softmax(model(images), dim=1).gather(1, labels.reshape(-1, 1))  # (N, 1)
    # Summing is safe: image i's probability depends on image i's pixels only (eval mode).
    (gradient,) = torch.autograd.grad(p_true.sum(), images)
    return gradient


def ink_mask(images: torch.Tensor, threshold: float = INK_THRESHOLD) -> torch.Tensor:
    """The ink (pixels > threshold) grown by 1 pixel on every side: (N, 1, 28, 28) booleans."""
    ink = (images > threshold).float()
    return nn.functional.max_pool2d(ink, kernel_size=3, stride=1, padding=1) > 0  # 3x3 max = dilate by 1


def saliency_on_ink(saliency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image, the share of |saliency| that falls on the mask: (N,) in [0, 1]."""
    magnitude = saliency.abs().flatten(1)
    return (magnitude * mask.flatten(1)).sum(1) / magnitude.sum(1).clamp_min(1e-12)


def occlusion_map(model: nn.Module, image: torch.Tensor, label: int, *, patch: int = PATCH,
                  value: float = PATCH_VALUE) -> torch.Tensor:
    """How much p(label) drops when a patch x patch grey square covers each pixel: (28, 28).

    Every position of the square is one copy of the image, so all
    (28 - patch + 1)^2 positions run as one batch. A pixel's value is the
    average drop over the positions whose square covered it.
    """
    size = image.shape[-1]
    side = size - patch + 1  # positions per row: 28 - 5 + 1 = 24
    square = torch.ones(1, 1, patch, patch, device=image.device)
    # One-hot "the square's top-left corner is here", spread to the whole square by a transposed
    # convolution with a kernel of ones: (positions, 1, 28, 28) masks, 1 under the square.
    corners = torch.eye(side * side, device=image.device).reshape(-1, 1, side, side)
    masks = nn.functional.conv_transpose2d(corners, square)
    batch = image.reshape(1, 1, size, size) * (1 - masks) + value * masks
    with torch.no_grad():
        p_before = torch.softmax(model(image.reshape(1, 1, size, size)), 1)[0, label]
        drops = p_before - torch.softmax(model(batch), 1)[:, label]  # (positions,)
        # The same transposed convolution adds each position's drop onto the pixels it covered.
        total = nn.functional.conv_transpose2d(drops.reshape(1, 1, side, side), square)[0, 0]
        covered = nn.functional.conv_transpose2d(torch.ones_like(drops).reshape(1, 1, side, side), square)[0, 0]
    return (total / covered).cpu()


def pick_digits(probabilities: dict, labels: torch.Tensor) -> dict:
    """Three test digits to explain: one every model gets right, one some model gets wrong, the least certain."""
    predictions = torch.stack([p.argmax(1) for p in probabilities.values()])  # (models, N)
    all_right = (predictions == labels).all(0)
    wrong = ~all_right
    mean_confidence = torch.stack([p.max(1).values for p in probabilities.values()]).mean(0)
    return {"right": int(all_right.nonzero()[0]) if all_right.any() else 0,
            "wrong": int(wrong.nonzero()[0]) if wrong.any() else 1,
            "least certain": int(mean_confidence.argmin())}


def plot_saliency(models: dict, images, labels, probabilities: dict, digits: dict, path, *, patch: int, show: bool):
    import matplotlib.pyplot as plt

    columns = 1 + 2 * len(models)
    fig, axes = plt.subplots(len(digits), columns, figsize=(2.6 * columns, 2.9 * len(digits) + 1.2), squeeze=False)
    for row, (kind, index) in enumerate(digits.items()):
        image, label = images[index], int(labels[index])
        raw = image[0].cpu().numpy()
        axes[row, 0].imshow(raw, cmap="gray", vmin=0, vmax=1)
        said = ", ".join(f"{name} {int(p[index].argmax())} ({100 * p[index].max():.0f}%)"
                         for name, p in probabilities.items())
        axes[row, 0].set_title(f"{kind}: test #{index}, true {label}\n{said}", fontsize=9)
        for m, (name, model) in enumerate(models.items()):
            grad_x_input = (gradient_saliency(model, image[None], labels[index:index + 1]) * image[None])[0, 0]
            occlusion = occlusion_map(model, image, label, patch=patch)
            for col, heat, title in ((1 + 2 * m, grad_x_input.cpu(), f"{name}: gradient x input"),
                                     (2 + 2 * m, occlusion, f"{name}: occlusion ({patch}x{patch} grey)\n"
                                                            f"largest drop of p(true): {100 * occlusion.max():.1f} points")):
                limit = max(heat.abs().max().item(), 1e-9)  # symmetric: white = no effect
                axes[row, col].imshow(heat.numpy(), cmap="bwr", vmin=-limit, vmax=limit)
                axes[row, col].contour(raw, levels=[INK_THRESHOLD], colors="black", linewidths=0.6)
                axes[row, col].set_title(title, fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Which pixels drive the prediction of the true digit? (black line = the digit's outline; "
                 "each map scaled to its own largest value)\n"
                 "gradient x input: red = this lit pixel raises p(true), blue = lowers it (for a tiny change).\n"
                 f"occlusion: red = covering this spot with a {patch}x{patch} grey square lowers p(true), "
                 "blue = raises it (a real experiment, large change).", fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 4. Feature space: what the last hidden layer makes of the digits
# ---------------------------------------------------------------------------
# Both networks end with fc2, a Linear layer from 128 features to 10 scores.
# Those 128 numbers are what the network made of the image; a forward hook on
# fc2 catches them. PCA finds the 2 directions in which they vary most
# (torch.pca_lowrank) and we draw each digit there: a fresh network mixes the
# classes; training pulls them into clusters a Linear layer can separate.
def last_hidden_features(model: RawPixels, images: torch.Tensor) -> torch.Tensor:
    """The input of the model's last layer (fc2) for each image: (N, 128)."""
    caught = []
    hook = model.model.fc2.register_forward_hook(lambda layer, inputs, output: caught.append(inputs[0].cpu()))
    try:
        logits_of(model, images)
    finally:
        hook.remove()
    return torch.cat(caught)


def pca_2d(features: torch.Tensor, *, seed: int = SEED) -> tuple[torch.Tensor, float]:
    """Features (N, D) projected on their first 2 principal directions: (N, 2), and the variance share kept."""
    centered = features - features.mean(0)
    torch.manual_seed(seed)  # pca_lowrank is randomised: same seed, same picture
    _, singular, directions = torch.pca_lowrank(centered, q=min(6, *centered.shape), center=False, niter=4)
    kept = (singular[:2] ** 2).sum() / centered.pow(2).sum().clamp_min(1e-12)  # variance along the 2 axes
    return centered @ directions[:, :2], float(kept)


def centroid_accuracy(points: torch.Tensor, labels: torch.Tensor) -> float:
    """How often a point's nearest class centre (in the 2-D picture) is its own class: how well the clusters separate."""
    classes = labels.unique()
    centres = torch.stack([points[labels == c].mean(0) for c in classes])  # (classes, 2)
    nearest = classes[torch.cdist(points, centres).argmin(1)]
    return (nearest == labels).float().mean().item()


def plot_feature_space(panels: list, labels, path, *, show: bool):
    """feature_space.png: one row per model, before training on the left, after on the right."""
    import matplotlib.pyplot as plt

    rows = len(panels) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 5.2 * rows + 0.6), squeeze=False, layout="constrained")
    for ax, (title, points, predictions, kept, separated) in zip(axes.flat, panels):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=5)
        right = (predictions == labels).float().mean().item()
        if "after" in title:  # before training nearly every digit is wrong: crosses would hide the colours
            wrong = predictions != labels
            ax.scatter(points[wrong, 0], points[wrong, 1], marker="x", color="black", s=20, linewidths=0.8,
                       label=f"wrong ({int(wrong.sum())})")
            ax.legend(loc="lower right", fontsize=9)
        ax.set(title=f"{title}: {100 * right:.0f}% of these digits right\nPCA keeps {100 * kept:.0f}% of the "
                     f"variance; {100 * separated:.0f}% lie nearest their own class centre",
               xlabel="principal direction 1", ylabel="principal direction 2")
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.2)
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="true digit (colour)", fraction=0.03, pad=0.01)
    fig.suptitle(f"The last hidden layer (128 numbers per digit) of {len(labels):,} test digits, projected to 2-D "
                 "with PCA.\nLeft: a fresh network with random weights, the classes mixed. Right: after training, "
                 "clusters.", fontsize=11)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 5. Decision boundaries, in a network squeezed through 2 numbers
# ---------------------------------------------------------------------------
# 784 -> 128 -> 2 -> 10: the whole decision passes through 2 numbers, so we
# can draw the plane they live in. The last layer is Linear(2, 10): digit d
# wins where its score w_d . z + b_d is the largest, so every boundary between
# two regions is a straight line. Training had to place the digits in the
# plane so that straight lines separate them; the confusable ones end up
# side by side.
class Bottleneck(nn.Module):
    def __init__(self, *, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 2))
        self.head = nn.Linear(2, 10)  # 2 * 10 weights + 10 biases: straight boundaries

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) raw pixels -> (B, 10)
        return self.head(self.encode((x - self.mean) / self.std))


def train_bottleneck(data, args, device) -> tuple[Bottleneck, dict]:
    pixels = data.train_loader.images  # raw, 0..1: the network normalises them itself, with their statistics
    model = Bottleneck(mean=pixels.mean().item(), std=pixels.std().item()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = dl_utils.train_model(model, data.train_loader, data.val_loader, loss_fn=nn.CrossEntropyLoss(),
                                   optimizer=optimizer, epochs=args.epochs, device=device)
    return model.eval(), history


def plot_decision_boundary(model: Bottleneck, images, labels, accuracy: float, pairs: list, path, *, show: bool):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    with torch.no_grad():
        codes = model.encode((images - model.mean) / model.std).cpu()  # (N, 2)
    low, high = codes.quantile(0.005, dim=0), codes.quantile(0.995, dim=0)  # a few outliers would zoom out
    margin = 0.1 * (high - low)
    xs = torch.linspace(float(low[0] - margin[0]), float(high[0] + margin[0]), 400)
    ys = torch.linspace(float(low[1] - margin[1]), float(high[1] + margin[1]), 400)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (400*400, 2)
    with torch.no_grad():
        regions = model.head(grid.to(next(model.parameters()).device)).argmax(1).cpu().reshape(400, 400)
    colors = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(9, 7.6))
    box = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    ax.imshow(regions.numpy(), origin="lower", extent=box, aspect="auto",
              cmap=ListedColormap(colors), vmin=-0.5, vmax=9.5, alpha=0.3, interpolation="nearest")
    ax.contour(xs.numpy(), ys.numpy(), regions.numpy(), levels=torch.arange(-0.5, 10).tolist(), colors="black",
               linewidths=0.5)
    ax.scatter(codes[:, 0], codes[:, 1], c=[colors[int(d)] for d in labels], s=5, alpha=0.8)
    for digit in range(10):  # name each region at the middle of its own test digits
        mine = codes[labels.cpu() == digit]
        if len(mine):
            ax.text(*mine.median(0).values.tolist(), str(digit), fontsize=16, weight="bold", ha="center",
                    va="center", bbox={"boxstyle": "circle", "facecolor": "white", "edgecolor": colors[digit]})
    pair_text = ", ".join(f"{a}/{b} ({count})" for a, b, count in pairs)
    ax.set(xlim=box[:2], ylim=box[2:], xlabel="bottleneck number 1", ylabel="bottleneck number 2",
           title=f"A network squeezed through 2 numbers (784 -> 128 -> 2 -> 10, test accuracy {100 * accuracy:.1f}%)\n"
                 f"background = the digit it predicts at each point; black lines = decision boundaries;\n"
                 f"dots = {len(labels):,} test digits in their true colour. Most confused pairs: {pair_text}")
    ax.title.set_fontsize(10)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 6. Confidence: when is the network sure, and can you trust it?
# ---------------------------------------------------------------------------
# A model is calibrated when, among the predictions it makes with 80%
# confidence, 80% are right. The reliability diagram sorts the test digits
# into N_BINS bins by confidence and plots each bin's accuracy against its
# mean confidence: on the diagonal = calibrated. The expected calibration
# error (ECE) is the gap, averaged over the bins weighted by their size:
#     ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|
# Temperature scaling divides every logit by one number T (T > 1 = less
# sure) before the softmax. The prediction never changes (the order of the
# logits is the same); only the confidence does. T is chosen on the
# VALIDATION set (lowest cross-entropy), then measured on the test set.
def reliability(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = N_BINS) -> dict:
    """Bins of equal width from 0.1 to 1: per bin its mean confidence, accuracy and count; and the ECE."""
    edges = torch.linspace(0.1, 1.0, n_bins + 1)
    which = torch.bucketize(confidence.clamp(0.1, 1.0), edges[1:-1], right=False)  # bin 0 .. n_bins-1
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            conf, acc = confidence[inside].mean().item(), correct[inside].float().mean().item()
            ece += count / len(confidence) * abs(acc - conf)
            bins.append({"low": edges[b].item(), "high": edges[b + 1].item(), "confidence": conf,
                         "accuracy": acc, "count": count})
    return {"bins": bins, "ece": ece}


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in 0.25 ... 10 (200 values, evenly spaced in log) with the lowest cross-entropy of logits / T."""
    temperatures = torch.logspace(-0.6, 1.0, 200)
    scaled = logits[None] / temperatures[:, None, None]  # (200, N, 10): every T at once
    log_p_true = torch.log_softmax(scaled, dim=2).gather(2, labels.reshape(1, -1, 1).expand(len(temperatures), -1, 1))
    losses = -log_p_true.mean(dim=(1, 2))  # cross-entropy for each T
    return float(temperatures[losses.argmin()])


def plot_confidence(summary: dict, path, *, show: bool):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summary), 2, figsize=(12, 4.6 * len(summary)), squeeze=False)
    for (name, s), (ax_hist, ax_rel) in zip(summary.items(), axes):
        bins = torch.linspace(0.1, 1.0, 19).tolist()
        for group, color in (("right", "tab:green"), ("wrong", "tab:red")):
            values = s["confidence"][s["correct"] == (group == "right")]
            if len(values):
                ax_hist.hist(values.numpy(), bins=bins, color=color, histtype="step", linewidth=2,
                             weights=[100 / len(values)] * len(values),
                             label=f"{group} ({len(values):,}): median {100 * values.median():.1f}%")
        ax_hist.set(title=f"{name}: how sure is it? (each colour sums to 100%)", xlabel="confidence (top probability)",
                    ylabel="% of the right / of the wrong answers (log scale)", yscale="log")
        ax_hist.legend(loc="upper left", fontsize=9)
        for key, color, label in (("before", COLORS[name], f"as trained: ECE {100 * s['before']['ece']:.2f}%"),
                                  ("after", "black", f"divided by T = {s['temperature']:.2f}: "
                                                     f"ECE {100 * s['after']['ece']:.2f}%")):
            points = s[key]["bins"]
            ax_rel.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], "-", color=color,
                        label=label)
            ax_rel.scatter([p["confidence"] for p in points], [p["accuracy"] for p in points], color=color,
                           s=[4 + 2 * p["count"] ** 0.5 for p in points], zorder=3)  # area ~ digits in the bin
        ax_rel.plot([0.1, 1], [0.1, 1], "--", color="gray", label="calibrated (accuracy = confidence)")
        ax_rel.set(title=f"{name}: reliability on the test set ({N_BINS} bins; T fitted on validation)",
                   xlabel="mean confidence in the bin", ylabel="accuracy in the bin", xlim=(0.1, 1.02), ylim=(0, 1.02))
        ax_rel.legend(loc="lower right", fontsize=9)
        for ax in (ax_hist, ax_rel):
            ax.grid(alpha=0.3)
    fig.suptitle("Left: confidence when right and when wrong. Right: is it as often right as it is sure? Below the "
                 "diagonal = over-confident;\nbigger dot = more test digits in that bin (most sit in the last one, "
                 "above 94%: a few digits make a small bin zigzag)", fontsize=11)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 7. Robustness: FGSM at growing strength
# ---------------------------------------------------------------------------
# 06 attacked its CNN at one epsilon. Here both models, at several: every
# pixel moves by epsilon (in 0..1 brightness) in the direction that raises the
# loss, with 06's fgsm_attack (its images are raw pixels: mean 0, std 1).
def fgsm_accuracy(model: nn.Module, images, labels, epsilons=EPSILONS, batch: int = 500) -> dict:
    """{epsilon: accuracy on the images after the attack}, attacking `batch` images at a time."""
    result = {}
    for epsilon in epsilons:
        right = 0
        for i in range(0, len(images), batch):
            attacked = fgsm_attack(model, images[i:i + batch], labels[i:i + batch], epsilon=epsilon, mean=0.0, std=1.0)
            right += int((logits_of(model, attacked).argmax(1) == labels[i:i + batch].cpu()).sum())
        result[f"{epsilon:g}"] = right / len(images)
    return result


def plot_fgsm(models: dict, curves: dict, image, label: int, path, *, n_attacked: int, show: bool):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 4.2 + 1.7 * len(models)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.4, 1.6 * len(models) / 2 + 0.4])
    ax = top.subplots()
    for name, curve in curves.items():
        eps = [float(e) for e in curve]
        ax.plot(eps, [100 * a for a in curve.values()], "o-", color=COLORS[name], label=name)
    ax.set(title=f"Test accuracy under FGSM ({n_attacked:,} test digits attacked at each epsilon)",
           xlabel="epsilon: how far each pixel may move (fraction of full brightness)", ylabel="accuracy (%)",
           ylim=(0, 101), xticks=list(EPSILONS))
    ax.axhline(10, color="gray", linestyle=":", label="guessing (10%)")
    ax.grid(alpha=0.3)
    ax.legend()
    rows = bottom.subplots(len(models), len(EPSILONS), squeeze=False)
    for r, (name, model) in enumerate(models.items()):
        for c, epsilon in enumerate(EPSILONS):
            attacked = fgsm_attack(model, image[None], torch.tensor([label], device=image.device), epsilon=epsilon,
                                   mean=0.0, std=1.0)
            probs = torch.softmax(logits_of(model, attacked), 1)[0]
            rows[r, c].imshow(attacked[0, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            rows[r, c].set_title(f"eps {epsilon:g}: {name} says {int(probs.argmax())} ({100 * probs.max():.0f}%)",
                                 fontsize=8, color="tab:green" if int(probs.argmax()) == label else "tab:red")
            rows[r, c].axis("off")
    bottom.suptitle(f"The same test digit (a {label}) attacked against each model (green = still right, "
                    "red = fooled)", fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# The lesson: one function per section, each printing what to notice
# ---------------------------------------------------------------------------
def section_weights(models, images, *, out_dir, show) -> dict:
    """mlp_weights.png and the MLP's dead neurons (none for the CNN: its first layer is a convolution)."""
    if "MLP" not in models:
        print("(no MLP checkpoint, so no mlp_weights.png: run python 03_train_mnist.py for it)")
        return {name: {} for name in models}
    dead = dead_neurons(models["MLP"], images)
    plot_mlp_weights(models["MLP"], dead, out_dir / "mlp_weights.png", show=show)
    print(f"mlp_weights.png: each tile is one neuron's 784 weights. Look for strokes and blobs (parts of digits). "
          f"{len(dead)} neurons never fire on the {len(images):,} test digits ({', '.join(map(str, dead)) or 'none'}): "
          "their ReLU gives 0, no gradient reaches them, and their weights are still random speckle.")
    return {name: {"dead_neurons": dead, "dead_neuron_count": len(dead)} if name == "MLP" else {} for name in models}


def section_saliency(models, images, labels, probabilities, *, n_digits, patch, out_dir, show) -> tuple[dict, dict]:
    """saliency_on_ink and ink_area per model, over the first n_digits test digits; saliency.png."""
    mask = ink_mask(images[:n_digits])
    area = mask.float().mean().item()  # the share of pixels on (dilated) ink: what chance would give
    measured = {}
    for name, model in models.items():
        share = saliency_on_ink(gradient_saliency(model, images[:n_digits], labels[:n_digits]), mask).mean().item()
        measured[name] = {"saliency_on_ink": share, "ink_area": area, "saliency_on_ink_vs_chance": share / area}
        print(f"{name}: {100 * share:.0f}% of |d p(true) / d pixel| falls on the ink (grown by 1 pixel), which "
              f"covers {100 * area:.0f}% of the image: {share / area:.1f}x what chance would give")
    digits = pick_digits(probabilities, labels.cpu())
    plot_saliency(models, images, labels, probabilities, digits, out_dir / "saliency.png", patch=patch, show=show)
    print("saliency.png: gradient x input shows which lit pixels count; occlusion also lights up empty places "
          "where a grey smudge changes the answer. Compare how closely each model's map follows the strokes.")
    return measured, digits


def section_features(models, fresh, images, labels, *, seed, out_dir, show) -> dict:
    """PCA of the last hidden layer, before and after training; feature_space.png."""
    panels, measured = [], {}
    for name in models:
        for when, model in (("before", fresh[name]), ("after", models[name])):
            points, kept = pca_2d(last_hidden_features(model, images), seed=seed)
            separated = centroid_accuracy(points, labels.cpu())
            panels.append((f"{name} {when} training", points, logits_of(model, images).argmax(1), kept, separated))
            measured.setdefault(name, {})[f"pca_centroid_accuracy_{when}"] = separated
            print(f"{name} {when} training: in the 2-D picture, {100 * separated:.0f}% of the digits lie nearest "
                  "their own class centre")
    plot_feature_space(panels, labels.cpu(), out_dir / "feature_space.png", show=show)
    return measured


def section_boundary(data, args, device, *, n_digits) -> dict:
    """Train the 2-number bottleneck network and draw its plane; decision_boundary.png."""
    model, history = train_bottleneck(data, args, device)
    images, labels = data.test_loader.images, data.test_loader.labels
    predictions = logits_of(model, images).argmax(1)
    accuracy = (predictions == labels.cpu()).float().mean().item()
    pairs = dl_utils.most_confused_pairs(dl_utils.confusion_matrix(predictions, labels), k=3, both_ways=True)
    plot_decision_boundary(model, images[:n_digits], labels[:n_digits], accuracy, pairs,
                           args.out_dir / "decision_boundary.png", show=args.show)
    print(f"Through 2 numbers it still reads {100 * accuracy:.1f}% of the test digits. decision_boundary.png: the "
          "boundaries are straight lines (the last layer is linear); the pairs it mixes up most sit side by side: "
          + ", ".join(f"{a}/{b}" for a, b, _ in pairs))
    return {"test_accuracy": accuracy, "epochs": args.epochs, "val_accuracy": history["val_accuracy"][-1],
            "most_confused_pairs": [{"digits": [a, b], "count": c} for a, b, c in pairs]}


def section_confidence(models, logits, labels, val_images, val_labels, *, out_dir, show) -> dict:
    """ECE before and after temperature scaling (T from the validation set); confidence.png."""
    summary, measured = {}, {}
    for name, model in models.items():
        temperature = fit_temperature(logits_of(model, val_images), val_labels.cpu())
        confidence, predicted = torch.softmax(logits[name], 1).max(1)
        correct = predicted == labels.cpu()
        summary[name] = {"confidence": confidence, "correct": correct, "temperature": temperature,
                         "before": reliability(confidence, correct),
                         "after": reliability(torch.softmax(logits[name] / temperature, 1).max(1).values, correct)}
        wrong = confidence[~correct].median().item() if (~correct).any() else None
        measured[name] = {"expected_calibration_error": summary[name]["before"]["ece"], "temperature": temperature,
                          "expected_calibration_error_after_temperature": summary[name]["after"]["ece"],
                          "median_confidence_right": confidence[correct].median().item(),
                          "median_confidence_wrong": wrong}
        verdict = ("about right" if abs(temperature - 1) < 0.1 else
                   "over-confident: T > 1 softens it" if temperature > 1 else "under-confident: T < 1 sharpens it")
        print(f"{name}: expected calibration error {100 * summary[name]['before']['ece']:.2f}%; best T on validation "
              f"{temperature:.2f} ({verdict}), test ECE after dividing by T {100 * summary[name]['after']['ece']:.2f}%. "
              f"Median confidence when right "
              f"{100 * measured[name]['median_confidence_right']:.1f}%"
              + (f", when wrong {100 * wrong:.1f}%" if wrong is not None else ", and it made no mistake"))
    plot_confidence(summary, out_dir / "confidence.png", show=show)
    return measured


def section_fgsm(models, images, labels, digit: int, *, out_dir, show) -> dict:
    """Accuracy under FGSM at each epsilon, per model; fgsm_vs_epsilon.png."""
    curves = {name: fgsm_accuracy(model, images, labels) for name, model in models.items()}
    for name, curve in curves.items():
        print(f"{name}: " + "  ".join(f"eps {eps}: {100 * acc:.1f}%" for eps, acc in curve.items()))
    plot_fgsm(models, curves, images[digit], int(labels[digit]), out_dir / "fgsm_vs_epsilon.png",
              n_attacked=len(images), show=show)
    return {name: {"fgsm_accuracy": curve} for name, curve in curves.items()}


def main(argv=None) -> dict:
    args = dl_utils.parse_args(build_parser(), argv)
    start, timing = time.perf_counter(), {}

    def done(section: str) -> None:  # seconds since the previous section ended
        timing[section] = time.perf_counter() - start - sum(timing.values())

    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    print("\n== 1. The trained models, rebuilt as 04 does")
    models, fresh = load_models(args.out_dir, device)  # before the data: no checkpoint, no waiting
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset, seed=args.seed,
                                    device=device, normalization={"mean": 0.0, "std": 1.0})  # raw pixels, 0..1
    images, labels = data.test_loader.images, data.test_loader.labels  # (10000, 1, 28, 28) in 0..1, (10000,)
    n_shown = min(QUICK_DIGITS if args.quick else N_FEATURES, len(images))
    n_saliency = min(20 if args.quick else args.saliency_digits, len(images))
    n_attacked = min(QUICK_DIGITS if args.quick else args.attacked, len(images))
    logits = {name: logits_of(model, images) for name, model in models.items()}  # (10000, 10) each
    probabilities = {name: torch.softmax(z, 1) for name, z in logits.items()}
    accuracy = {name: {"test_accuracy": (p.argmax(1) == labels.cpu()).float().mean().item()}
                for name, p in probabilities.items()}
    done("load")

    print("\n== 2. What each hidden neuron looks for")
    weights = section_weights(models, images, out_dir=args.out_dir, show=args.show)
    done("weights")

    print(f"\n== 3. Which pixels drive the decision (first {n_saliency} test digits)")
    saliency, digits = section_saliency(models, images, labels, probabilities, n_digits=n_saliency,
                                        patch=args.patch, out_dir=args.out_dir, show=args.show)
    done("saliency")

    print(f"\n== 4. Feature space: the last hidden layer of {n_shown:,} test digits, in 2-D")
    features = section_features(models, fresh, images[:n_shown], labels[:n_shown], seed=args.seed,
                                out_dir=args.out_dir, show=args.show)
    done("features")

    print(f"\n== 5. Decision boundaries: a 784 -> 128 -> 2 -> 10 network, trained {args.epochs} epoch(s) here")
    bottleneck = section_boundary(data, args, device, n_digits=n_shown)
    done("boundary")

    print("\n== 6. Confidence and calibration (test set; the temperature T is fitted on the validation set)")
    calibration = section_confidence(models, logits, labels, data.val_loader.images, data.val_loader.labels,
                                     out_dir=args.out_dir, show=args.show)
    done("confidence")

    print(f"\n== 7. FGSM at growing epsilon ({n_attacked:,} test digits)")
    robustness = section_fgsm(models, images[:n_attacked], labels[:n_attacked], digits["right"],
                              out_dir=args.out_dir, show=args.show)
    done("fgsm")

    per_model = {name: {**accuracy[name], **weights[name], **saliency[name], **features[name], **calibration[name],
                        **robustness[name]} for name in models}
    results = {"script": "07_look_inside", "device": dl_utils.device_name(device), "models": per_model,
               "explained_digits": digits, "bottleneck": bottleneck, "settings": dl_utils.settings_from_args(args),
               "timing": timing, "total_seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time(),  # CPU time of this process: less sensitive to other programs
               **dl_utils.machine_info()}  # CPU, threads, torch build and how busy the machine was (load_average)
    dl_utils.save_results(args.out_dir, "07_look_inside", results)
    print(f"\nSaved mlp_weights.png, saliency.png, feature_space.png, decision_boundary.png, confidence.png, "
          f"fgsm_vs_epsilon.png and 07_look_inside.json in {args.out_dir} ({results['total_seconds']:.0f}s in all)")
    print("Next: the exercises in LEARNING_GUIDE.md, or draw your own digit: python 04_load_model.py --draw")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
