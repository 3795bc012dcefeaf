"""07 - Look inside what you built: weights, saliency, features, boundaries, confidence, robustness.

What you will learn
  * what each hidden neuron of 03's MLP looks for: its 784 weights drawn as a 28x28 picture
  * which pixels drive a decision, asked two ways: the gradient (a tiny change) and occlusion
    (cover a patch and measure the drop), for the MLP and the CNN side by side
  * how training turns pixels into features in which the digits form clusters (PCA)
  * then three side experiments, run as steps 5-7 from extras/: decision boundaries in a network
    squeezed through 2 numbers; whether a network's confidence can be trusted (reliability
    diagram, calibration error, temperature scaling); how fast accuracy falls as FGSM grows

Run first: 03_train_mnist.py and/or 06_cnn_mnist.py (07 reads mnist_model.pth and cnn_model.pth).

Run it
    python 07_look_inside.py                        # both models
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

How long: under a minute on a 2-core CPU (README.md "Results"); --quick: seconds plus the start-up.
"""

import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import dl_utils
from extras import calibration, decision_boundary, fgsm_sweep

# ---------------------------------------------------------------------------
# Settings (each becomes a flag: SALIENCY_DIGITS -> --saliency-digits; see --help)
# ---------------------------------------------------------------------------
SEED = 0  # same seed, same fresh networks, same 2-D network, same PCA picture
SALIENCY_DIGITS = 50  # saliency_on_ink is averaged over the first 50 test digits: the share varies by digit
PATCH = 5  # occlusion: side of the grey square slid over the digit, about a stroke's width
EPOCHS = 3  # for the 2-D bottleneck network (step 5), the only thing 07 trains: seconds per epoch
BATCH_SIZE = dl_utils.BATCH_SIZE  # the 2-D network's batch: the course's 64 (shared default lives in dl_utils)
LR = 3e-3  # the 2-D network's: 3x 03's, as a 2-number bottleneck learns slowly at 1e-3 in 3 epochs
SUBSET = 0  # train the 2-D network on the first N training images; 0 = all 55,000
PIXELS = "natural"  # "shuffled": the digits as 03/06 --pixels shuffled saw them (pass what they were trained on)
EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # FGSM strengths in pixel units (step 7); 06 used 0.1
ATTACKED = 2000  # test digits attacked per epsilon: the CNN's backward pass is the slow part
SETTINGS = dl_utils.collect_settings(globals())  # the block above, in order: the flags and the recorded config

# Fixed choices, not flags (flags are made only from UPPERCASE names that hold a number, a text or a list):
MODEL_FILES = {"MLP": ("mnist_model.pth", "03_train_mnist.py"), "CNN": ("cnn_model.pth", "06_cnn_mnist.py")}
COLORS = {"MLP": "tab:blue", "CNN": "tab:green"}  # one colour per model in every figure
ink_threshold = 0.5  # a pixel brighter than half white is ink (MNIST strokes are near 1, background 0)
shown_digits = 2000  # test digits drawn in feature_space.png and decision_boundary.png: clusters, still dots
quick_digits = 500  # --quick: features and attacks on 500 test digits, saliency on 20


# ---------------------------------------------------------------------------
# 1. The models, rebuilt from their checkpoints, taking raw pixels
# ---------------------------------------------------------------------------
# A checkpoint holds numbers and their recipe: "arch" and "model_config" name
# the network the numbers fit, and dl_utils.build_model builds it empty (04's
# rule: the same architecture first, then the weights). Each checkpoint also
# knows the normalisation it was trained with; we make it the model's first
# step, so everything below works on raw pixels, 0 (black) to 1 (white): a
# saliency is "per unit of brightness", an FGSM epsilon of 0.1 is a tenth of
# full brightness, and a grey patch is 0.5, for both models.
class RawPixels(nn.Module):
    def __init__(self, model: nn.Module, *, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28) in [0, 1]
        return self.model((x - self.mean) / self.std)


def load_models(out_dir, device) -> tuple[dict, dict]:
    """{"MLP": model, "CNN": model} for the checkpoints found in out_dir, and a fresh (untrained) copy of each."""
    trained, fresh = {}, {}
    for name, (file, made_by) in MODEL_FILES.items():
        if not (out_dir / file).is_file():
            continue
        checkpoint = dl_utils.load_checkpoint(out_dir / file, made_by=made_by)
        model = dl_utils.build_model(checkpoint)  # e.g. SimpleNN(hidden=128): the right shapes, random weights
        problems = dl_utils.state_dict_mismatches(model, checkpoint["state_dict"])
        if problems:
            raise dl_utils.CourseError(f"{out_dir / file} does not fit the network its code builds today: "
                                       f"{'; '.join(problems)}. Retrain it ({made_by}) and run 07 again.")
        model.load_state_dict(checkpoint["state_dict"])
        trained[name] = RawPixels(model, **checkpoint["normalization"]).to(device).eval()
        fresh[name] = RawPixels(dl_utils.build_model(checkpoint), **checkpoint["normalization"]).to(device).eval()
        saved = checkpoint["metrics"].get("test_accuracy")
        print(f"{name}: {out_dir / file} ({checkpoint['arch']}, {dl_utils.count_parameters(model):,} parameters"
              + (f", test accuracy {100 * saved:.2f}% when saved)" if saved is not None else ")"))
    if not trained:
        raise dl_utils.CourseError(
            f"07 looks inside the models that 03 and 06 trained, and found neither {MODEL_FILES['MLP'][0]} nor "
            f"{MODEL_FILES['CNN'][0]} in {out_dir}. Run python 03_train_mnist.py (the MLP) and/or "
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
# where it lowers it. A neuron whose ReLU gives 0 for every digit is dead: no
# gradient reaches it, so it never learns. To see the hidden layer we catch
# what the last layer, fc2, reads (the MLP and the CNN both end with fc2,
# 128 numbers -> 10 scores) with a forward hook: a function PyTorch calls
# every time that layer runs.
def last_hidden_features(model: RawPixels, images: torch.Tensor) -> torch.Tensor:
    """The input of the model's last layer (fc2) for each image: (N, 128)."""
    caught = []
    hook = model.model.fc2.register_forward_hook(lambda layer, inputs, output: caught.append(inputs[0].cpu()))
    try:
        logits_of(model, images)
    finally:
        hook.remove()  # or it would go on catching in every later forward pass
    return torch.cat(caught)


def dead_neurons(mlp: RawPixels, images: torch.Tensor) -> list[int]:
    """Hidden neurons whose ReLU outputs 0 for every image: no gradient ever reaches them."""
    return (last_hidden_features(mlp, images) == 0).all(dim=0).nonzero().flatten().tolist()


def show_weights(models: dict, images, path, *, made: str, show: bool) -> dict:
    """mlp_weights.png: the MLP's (hidden, 784) first-layer weights as a mosaic of 28x28 tiles, 16 per row."""
    if "MLP" not in models:  # the CNN's first layer is a convolution: its filters are 3x3, not 28x28 pictures
        print("(no MLP checkpoint, so no mlp_weights.png: run python 03_train_mnist.py for it)")
        return {}
    mlp = models["MLP"]
    dead = dead_neurons(mlp, images)
    weights = mlp.model.fc1.weight.detach().cpu().reshape(-1, 28, 28)  # (128, 784) -> (128, 28, 28)
    # Each neuron on its own symmetric scale (-1 .. 1 = its largest weight): white = 0 in every tile.
    weights = weights / weights.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    columns, rows = 16, -(-len(weights) // 16)  # ceiling division: 128 neurons -> 8 rows
    mosaic = torch.full((rows * 30, columns * 30), float("nan"))  # 28 pixels + a 2-pixel grey gap per tile
    for j, tile in enumerate(weights):
        r, c = divmod(j, columns)
        mosaic[r * 30:r * 30 + 28, c * 30:c * 30 + 28] = tile
    fig, ax = plt.subplots(figsize=(14, 8.1))
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
                 f"(each tile scaled to its own largest weight).\nBlack frame = dead ({len(dead)}): never active on "
                 f"the test digits.\n07 settings: {made}", fontsize=10)
    dl_utils.finish_figure(fig, path, show=show)
    print(f"mlp_weights.png: each tile is one neuron's 784 weights. Look for strokes and blobs (parts of digits). "
          f"{len(dead)} neurons never fire on the {len(images):,} test digits ({', '.join(map(str, dead)) or 'none'}): "
          "their ReLU gives 0 for every one of them, so they add nothing to any of these predictions.")
    return {"MLP": {"dead_neurons": dead, "dead_neuron_count": len(dead)}}


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


def ink_mask(images: torch.Tensor, threshold: float = ink_threshold) -> torch.Tensor:
    """The ink (pixels > threshold) grown by 1 pixel on every side: (N, 1, 28, 28) booleans."""
    ink = (images > threshold).float()
    return nn.functional.max_pool2d(ink, kernel_size=3, stride=1, padding=1) > 0  # 3x3 max = grow by 1


def saliency_on_ink(saliency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image, the share of |saliency| that falls on the mask: (N,) in [0, 1]."""
    magnitude = saliency.abs().flatten(1)
    return (magnitude * mask.flatten(1)).sum(1) / magnitude.sum(1).clamp_min(1e-12)


def occlusion_map(model: nn.Module, image: torch.Tensor, label: int, *, patch: int = PATCH,
                  value: float = 0.5) -> torch.Tensor:
    """How much p(label) drops when a patch x patch square of grey `value` covers each pixel: (28, 28).

    Grey (0.5) is neither ink (1) nor background (0), so covering anything
    changes it. Every position of the square is one copy of the image, so all
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
    right = (predictions == labels).all(0)
    mean_confidence = torch.stack([p.max(1).values for p in probabilities.values()]).mean(0)
    return {"right": int(right.nonzero()[0]) if right.any() else 0,
            "wrong": int((~right).nonzero()[0]) if (~right).any() else 1,
            "least certain": int(mean_confidence.argmin())}


def show_saliency(models: dict, images, labels, probabilities: dict, path, *, n: int, patch: int, made: str,
                  show: bool) -> tuple[dict, dict]:
    """saliency_on_ink and ink_area per model over the first n test digits; saliency.png for three of them."""
    mask = ink_mask(images[:n])
    area = mask.float().mean().item()  # the share of pixels on (grown) ink: what chance would give
    measured = {}
    for name, model in models.items():
        share = saliency_on_ink(gradient_saliency(model, images[:n], labels[:n]), mask).mean().item()
        measured[name] = {"saliency_on_ink": share, "ink_area": area, "saliency_on_ink_vs_chance": share / area}
        print(f"{name}: {100 * share:.0f}% of |d p(true) / d pixel| falls on the ink (grown by 1 pixel), which "
              f"covers {100 * area:.0f}% of the image: {share / area:.1f}x what chance would give")
    digits = pick_digits(probabilities, labels.cpu())
    columns = 1 + 2 * len(models)  # the digit, then gradient x input and occlusion for each model
    fig, axes = plt.subplots(len(digits), columns, figsize=(2.6 * columns, 2.9 * len(digits) + 1.6), squeeze=False)
    for row, (kind, index) in enumerate(digits.items()):
        image, label, raw = images[index], int(labels[index]), images[index, 0].cpu().numpy()
        said = ", ".join(f"{name} {int(p[index].argmax())} ({100 * p[index].max():.0f}%)"
                         for name, p in probabilities.items())
        axes[row, 0].imshow(raw, cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(f"{kind}: test #{index}, true {label}\n{said}", fontsize=9)
        for m, (name, model) in enumerate(models.items()):
            grad_x_input = (gradient_saliency(model, image[None], labels[index:index + 1]) * image[None])[0, 0]
            occlusion = occlusion_map(model, image, label, patch=patch)
            drop = (f"{name}: occlusion ({patch}x{patch} grey)\n"
                    f"largest drop of p(true): {100 * occlusion.max():.1f} points")
            for col, heat, title in ((1 + 2 * m, grad_x_input.cpu(), f"{name}: gradient x input"),
                                     (2 + 2 * m, occlusion, drop)):
                limit = max(heat.abs().max().item(), 1e-9)  # symmetric: white = no effect
                axes[row, col].imshow(heat.numpy(), cmap="bwr", vmin=-limit, vmax=limit)
                axes[row, col].contour(raw, levels=[ink_threshold], colors="black", linewidths=0.6)
                axes[row, col].set_title(title, fontsize=9)
        for ax in axes[row]:
            ax.set(xticks=[], yticks=[])
    fig.suptitle("Which pixels drive the prediction of the true digit? (black line = the digit's outline; each map "
                 "scaled to its own largest value)\ngradient x input: red = this lit pixel raises p(true), blue = "
                 f"lowers it (for a tiny change).\nocclusion: red = covering this spot with a {patch}x{patch} grey "
                 f"square lowers p(true), blue = raises it (a real experiment, large change).\n07 settings: {made}",
                 fontsize=10)
    dl_utils.finish_figure(fig, path, show=show)
    print("saliency.png: gradient x input shows which lit pixels count; occlusion also lights up empty places "
          "where a grey smudge changes the answer. Compare how closely each model's map follows the strokes.")
    return measured, digits


# ---------------------------------------------------------------------------
# 4. Feature space: what the last hidden layer makes of the digits
# ---------------------------------------------------------------------------
# The 128 numbers fc2 reads (last_hidden_features, section 2) are what the
# network made of the image. PCA finds the 2 directions in which they vary
# most (torch.pca_lowrank) and we draw each digit there: a fresh network
# mixes the classes; training pulls them into clusters a Linear layer can
# separate.
def pca_2d(features: torch.Tensor, *, seed: int = SEED) -> tuple[torch.Tensor, float]:
    """Features (N, D) projected on their first 2 principal directions: (N, 2), and the variance share kept."""
    centered = features - features.mean(0)
    torch.manual_seed(seed)  # pca_lowrank is randomised: same seed, same picture
    _, singular, directions = torch.pca_lowrank(centered, q=min(6, *centered.shape), center=False, niter=4)
    kept = (singular[:2] ** 2).sum() / centered.pow(2).sum().clamp_min(1e-12)  # variance along the 2 axes
    return centered @ directions[:, :2], float(kept)


def centroid_accuracy(points: torch.Tensor, labels: torch.Tensor) -> float:
    """How often a point's nearest class centre (in the 2-D picture) is its own class: how well clusters separate."""
    classes = labels.unique()
    centres = torch.stack([points[labels == c].mean(0) for c in classes])  # (classes, 2)
    return (classes[torch.cdist(points, centres).argmin(1)] == labels).float().mean().item()


def show_features(models: dict, fresh: dict, images, labels, path, *, seed: int, made: str, show: bool) -> dict:
    """feature_space.png, one row per model: before training on the left, after on the right."""
    labels, measured = labels.cpu(), {}
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 5.2 * len(models) + 0.9), squeeze=False,
                             layout="constrained")
    for name, row in zip(models, axes):
        for ax, when, model in ((row[0], "before", fresh[name]), (row[1], "after", models[name])):
            points, kept = pca_2d(last_hidden_features(model, images), seed=seed)
            separated = centroid_accuracy(points, labels)
            measured.setdefault(name, {})[f"pca_centroid_accuracy_{when}"] = separated
            print(f"{name} {when} training: in the 2-D picture, {100 * separated:.0f}% of the digits lie nearest "
                  "their own class centre")
            scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=5)
            wrong = logits_of(model, images).argmax(1) != labels
            if when == "after":  # before training nearly every digit is wrong: crosses would hide the colours
                ax.scatter(points[wrong, 0], points[wrong, 1], marker="x", color="black", s=20, linewidths=0.8,
                           label=f"wrong ({int(wrong.sum())})")
                ax.legend(loc="lower right", fontsize=9)
            ax.set_title(f"{name} {when} training: {100 - 100 * wrong.float().mean():.0f}% of these digits right\n"
                         f"PCA keeps {100 * kept:.0f}% of the variance; {100 * separated:.0f}% lie nearest their own "
                         "class centre", fontsize=10)
            ax.set(xlabel="principal direction 1", ylabel="principal direction 2")
            ax.grid(alpha=0.2)
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="true digit (colour)", fraction=0.03, pad=0.01)
    fig.suptitle(f"The last hidden layer (128 numbers per digit) of {len(labels):,} test digits, projected to 2-D "
                 "with PCA.\nLeft: a fresh network with random weights, the classes mixed. Right: after training, "
                 f"clusters.\n07 settings: {made}", fontsize=11)
    dl_utils.finish_figure(fig, path, show=show)
    return measured


# ---------------------------------------------------------------------------
# 5-7. Three side experiments, in extras/ (main runs them as steps 5, 6 and 7)
# ---------------------------------------------------------------------------
# Sections 2-4 looked inside the networks. The next three poke them from
# outside, each in a file of its own that you can read after this one:
#   5. extras/decision_boundary.py: a new network squeezed through 2 numbers, and the plane it draws its
#      boundaries in (--epochs, --batch-size, --lr and --subset are its settings)
#   6. extras/calibration.py: is the model as often right as it is sure? Reliability diagram, expected
#      calibration error, and temperature scaling fitted on the validation set
#   7. extras/fgsm_sweep.py: 06's FGSM attack (dl_utils.fgsm_attack) at each of EPSILONS, for both models


def main(argv=None) -> dict:
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__,
                                   choices={"PIXELS": ("natural", "shuffled")})
    args = dl_utils.parse_args(parser, argv)  # --quick: the 2-D network trains 1 epoch on 5,000 images ...
    if args.quick:  # ... and every analysis looks at fewer test digits
        args.saliency_digits, args.attacked = min(args.saliency_digits, 20), min(args.attacked, quick_digits)
    config, made = dl_utils.settings_from_args(args), dl_utils.changed_settings(parser, args)
    start, out, show = time.perf_counter(), args.out_dir, args.show
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    dl_utils.step("1. The trained models, rebuilt from their checkpoints")
    models, fresh = load_models(out, device)  # before the data: no checkpoint, no waiting
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset, seed=args.seed,
                                    device=device, normalization={"mean": 0.0, "std": 1.0}, pixels=args.pixels)
    images, labels = data.test_loader.images, data.test_loader.labels  # (10000, 1, 28, 28) in 0..1, (10000,)
    n_shown = min(quick_digits if args.quick else shown_digits, len(images))
    logits = {name: logits_of(model, images) for name, model in models.items()}  # (10000, 10) each
    probabilities = {name: torch.softmax(z, 1) for name, z in logits.items()}
    accuracy = {name: {"test_accuracy": (p.argmax(1) == labels.cpu()).float().mean().item()}
                for name, p in probabilities.items()}

    dl_utils.step("2. What each hidden neuron looks for")
    weights = show_weights(models, images, out / "mlp_weights.png", made=made, show=show)

    dl_utils.step(f"3. Which pixels drive the decision (first {min(args.saliency_digits, len(images))} test digits)")
    saliency, digits = show_saliency(models, images, labels, probabilities, out / "saliency.png",
                                     n=args.saliency_digits, patch=args.patch, made=made, show=show)

    dl_utils.step(f"4. Feature space: the last hidden layer of {n_shown:,} test digits, in 2-D")
    features = show_features(models, fresh, images[:n_shown], labels[:n_shown], out / "feature_space.png",
                             seed=args.seed, made=made, show=show)

    dl_utils.step(f"5. Decision boundaries: a 784 -> 128 -> 2 -> 10 network, trained {args.epochs} epoch(s) here")
    bottleneck = decision_boundary.run(data, args, device, n_digits=n_shown, made=made)

    dl_utils.step("6. Confidence and calibration (test set; the temperature T is fitted on the validation set)")
    val_logits = {name: logits_of(model, data.val_loader.images) for name, model in models.items()}
    confidence = calibration.run(logits, labels, val_logits, data.val_loader.labels, out / "confidence.png",
                                 colors=COLORS, made=made, show=show)

    dl_utils.step(f"7. FGSM at growing epsilon ({min(args.attacked, len(images)):,} test digits)")
    example = images[digits["right"]], int(labels[digits["right"]])  # the digit both models read right
    robustness = fgsm_sweep.run(models, images[:args.attacked], labels[:args.attacked], args, example=example,
                                colors=COLORS, made=made)

    parts = (accuracy, weights, saliency, features, confidence, robustness)
    results = {"script": "07_look_inside", "device": dl_utils.device_name(device), "explained_digits": digits,
               "models": {name: {k: v for part in parts for k, v in part.get(name, {}).items()} for name in models},
               "bottleneck": bottleneck, "settings": config, "total_seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time(),  # CPU time of this process: less sensitive to other programs
               **dl_utils.machine_info()}  # CPU, threads, torch build and how busy the machine was (load_average)
    dl_utils.save_results(out, "07_look_inside", results)
    written = ["mlp_weights.png"] * ("MLP" in models) + ["saliency.png", "feature_space.png", "decision_boundary.png",
                                                          "confidence.png", "fgsm_vs_epsilon.png"]
    print(f"\nSaved {', '.join(written)} and 07_look_inside.json in {out} ({results['total_seconds']:.0f}s in all)")
    print("Next: the exercises in LEARNING_GUIDE.md, or draw your own digit: python 04_load_model.py --draw")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
