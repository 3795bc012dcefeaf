"""06 - Convolutional networks: why they win on images, and what they learn.

What you will learn
  * what a convolution layer does: small filters slid over the image, the
    same few weights used at every position ("weight sharing")
  * how max pooling shrinks the image, and how a tensor's shape changes
    layer by layer: (B, 1, 28, 28) -> ... -> (B, 10), printed for one batch
  * why the CNN beats 03's MLP (docs/results/what_mattered.md#cnn_vs_mlp), where
    its parameters and its computation go, and what it loses when the pixels
    are shuffled (--pixels shuffled: the MLP never notices, the CNN does)
  * a learning-rate schedule (OneCycle: one line added to 03's loop) and
    label smoothing (one argument of the loss)
  * how to look inside a trained network (its filters, its feature maps,
    its confusion matrix, its worst mistakes) and how to fool it (FGSM)

Run first: 03_train_mnist.py, to compare the CNN with the MLP (optional).

Run it
    python 06_cnn_mnist.py                           # the full lesson: 2 epochs, about 99.3%
    python 06_cnn_mnist.py --quick                   # 1 epoch on 5,000 images: seconds
    python 06_cnn_mnist.py --schedule constant --lr 0.001   # no schedule, as in 03: compare
    python 06_cnn_mnist.py --epochs 1 --pixels shuffled      # one fixed shuffle of the 784 pixels: compare
    python 06_cnn_mnist.py --augment                 # train on randomly rotated/shifted digits (extras/augment.py)
    python 06_cnn_mnist.py --image my_digit.png      # then read your own handwriting
    python 04_load_model.py --model outputs/cnn_model.pth --image my_digit.png   # later, without training again
    python 06_cnn_mnist.py --data-dir DATA_DIR       # MNIST kept in DATA_DIR/MNIST/raw/ (offline); --help: all flags

Writes (in outputs/, or --out-dir)
    cnn_model.pth              the trained CNN + how it was made (dl_utils.load_checkpoint reads it)
    cnn_training_history.png   loss and accuracy per epoch, train vs validation
    cnn_filters.png            the 32 learned 3x3 filters of the first layer
    cnn_feature_maps.png       one test digit as conv1 and conv2 see it (map i of conv1 = filter i)
    confusion_matrix.png       which digit is mistaken for which, counted on the 10,000 test images
    misclassified.png          the test digits the CNN gets wrong, most confident first
    mlp_vs_cnn.png             parameters per layer, error per epoch and time: 03's MLP next to the CNN
    adversarial_example.png    a test digit, a faint FGSM perturbation, and the CNN fooled by it
    own_digit.png              with --image: your picture, what the CNN saw, its probabilities
    06_cnn_mnist.json          the measured results; experiments.csv gets one more row

How long: on the course's 2-core CPU, about 25 s of training (2 epochs), 35 s in all;
--quick a few seconds of training. Why so fast: docs/PERFORMANCE.md; exact figures: README.md "Results".
"""

import argparse
import functools
import math
import time
from pathlib import Path

import torch
from torch import nn

import dl_utils
import matplotlib.pyplot as plt  # after dl_utils, which picks the file-only backend when there is no screen
from extras import adversarial, augment, feature_maps, mlp_vs_cnn  # 06's side pieces; each file says why

# ---------------------------------------------------------------------------
# Settings: each one is a flag (--batch-size, --lr, --no-fused ...); change one, rerun, compare
# ---------------------------------------------------------------------------
EPOCHS = 2  # with OneCycle, 2 epochs reach about 99.3% test accuracy (README "Results", mean of 5 seeds)
BATCH_SIZE = 128  # 2x the course's 64: chosen on validation with the peak lr (docs/PERFORMANCE.md)
LR = 7e-3  # Adam's PEAK rate under OneCycle, chosen on validation (docs/PERFORMANCE.md); ledger: 0.015 ties it
SCHEDULE = "onecycle"  # onecycle: warm up to --lr, then anneal to ~0; constant: --lr throughout, as in 03
LABEL_SMOOTHING = 0.05  # aim at 95.5% for the true digit, not 100% (0 = plain cross-entropy): chosen on validation
DROPOUT = 0.25  # dropout before the last layer: a little regularisation for fc1's 401,536 parameters
OPTIMIZER = "adam"  # 06 trains with Adam only; recorded so experiments.csv tells 06 from 03's SGD runs
SUBSET = 0  # train on the first N training images only (0 = all 55,000)
PIXELS = "natural"  # shuffled: one fixed permutation of the 784 pixels, in every image: a CNN without the layout
AUGMENT = False  # train on randomly rotated (up to 10 degrees) and shifted (up to 2 px) digits (extras/augment.py)
EPSILON = 0.1  # FGSM attack strength, in pixel units (0..1): a faint change to every pixel
SEED = 0  # same seed, same weights and batches: the same numbers on the CPU
CHANNELS_LAST = True  # the CPU's convolutions read this memory layout faster: same maths (docs/PERFORMANCE.md)
FUSED = True  # Adam's update in one kernel: same rule, faster (docs/PERFORMANCE.md)
SETTINGS = dl_utils.collect_settings(globals())  # the block above, in order: the flags and the recorded config


# ---------------------------------------------------------------------------
# 1. The model
# ---------------------------------------------------------------------------
# An MLP flattens the image first, so for it pixel (3, 4) and pixel (3, 5)
# are unrelated inputs: it would learn the same if we shuffled the pixels.
# A convolution keeps the 2-D layout. Conv2d(1, 32, 3) holds 32 filters of
# 3 x 3 weights; each filter slides over the image and at every position
# computes one number (a weighted sum of the 3 x 3 pixels under it): large
# where the image looks like the filter (an edge, a stroke end). The SAME 9
# weights are used at all 784 positions ("weight sharing"), so a stroke is
# recognised wherever it is, with very few parameters. MaxPool2d(2) then
# keeps the largest value of every 2 x 2 block: half the width and height,
# and a little tolerance to where exactly a feature is. The second conv
# layer combines the 32 edge maps into 64 maps of larger parts of digits;
# two Linear layers at the end make the decision, as in the MLP.
# dl_utils.CNN is an identical copy, so that 04 and 07 can rebuild a saved
# CNN without importing this lesson (tests/test_06.py checks they agree).
class CNN(nn.Module):
    def __init__(self, dropout: float = 0.25):  # 0.25: DROPOUT above
        super().__init__()
        # The layers are created in the order forward() uses them, so that
        # print_shapes() below can run them one by one.
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)  # 32 * (1*3*3) + 32 = 320 parameters
        self.pool1 = nn.MaxPool2d(2)  # no parameters
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)  # 64 * (32*3*3) + 64 = 18,496
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 128)  # two 2x2 poolings: 28 -> 14 -> 7; 3,136 * 128 + 128 = 401,536
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, 10)  # 128 * 10 + 10 = 1,290

    # Pool, then ReLU. Most code writes conv -> ReLU -> pool; the two orders
    # give the same numbers, because ReLU never changes which of four
    # numbers is the largest: max(relu(a), relu(b)) = relu(max(a, b)).
    # Pooling first leaves the ReLU 4x fewer numbers: faster (docs/PERFORMANCE.md).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.pool1(self.conv1(x)))  # (B, 1, 28, 28) -> (B, 32, 28, 28) -> (B, 32, 14, 14)
        x = self.relu2(self.pool2(self.conv2(x)))  # -> (B, 64, 14, 14) -> (B, 64, 7, 7)
        x = self.flatten(x)  # -> (B, 3136): 64 maps of 7 x 7
        x = self.dropout(self.relu3(self.fc1(x)))  # -> (B, 128)
        return self.fc2(x)  # -> (B, 10) logits

    def feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What conv1 and conv2 (after a ReLU, before pooling) make of images x: (B, 32, 28, 28), (B, 64, 14, 14)."""
        conv1 = self.relu1(self.conv1(x))
        conv2 = self.relu2(self.conv2(self.pool1(conv1)))  # pool1(relu(.)) = relu(pool1(.)): what conv2 sees
        return conv1, conv2


# ---------------------------------------------------------------------------
# 2. Device, seed, data (as in 03)
# ---------------------------------------------------------------------------
# --pixels shuffled moves every pixel to another place, one fixed permutation
# for all images (dl_utils.shuffle_pixels). No information is lost, only the
# layout, which is all a convolution relies on: in the course's 1-epoch runs
# the CNN lost about 3 points with shuffled pixels (LEARNING_GUIDE.md, 06).
def load_data(args, device: torch.device) -> dl_utils.MNISTData:
    """MNIST in memory, as in 03; a bad --image is reported now, before a minute of training."""
    if args.image is not None and args.pixels == "shuffled":
        raise dl_utils.CourseError(
            "--image with --pixels shuffled: a CNN trained on shuffled pixels only knows shuffled digits, and "
            "your picture is not shuffled, so its answer would mean nothing. Drop one of the two flags.")
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels)
    print(f"Data: {len(data.train_loader.dataset):,} training, {len(data.val_loader.dataset):,} validation, "
          f"{len(data.test_loader.dataset):,} test images; {len(data.train_loader)} batches of up to "
          f"{args.batch_size} per epoch")
    if args.image is not None:  # a missing or unreadable picture: say so now, not after a minute of training
        dl_utils.prepare_digit_image(args.image, **data.normalization)
    return data


# ---------------------------------------------------------------------------
# 3. The model, layer by layer: shapes, parameters, computation
# ---------------------------------------------------------------------------
# Weight sharing, in numbers. conv1 turns 784 pixels into 32 x 28 x 28 =
# 25,088 outputs with 320 parameters. A Linear layer making the same
# 25,088 outputs would need a weight for every (input, output) pair:
# 784 x 25,088 = 19.7 million. The convolution gets away with 320 because
# it assumes what is true of images: the same pattern means the same thing
# anywhere, and it only depends on nearby pixels.
def print_shapes(model: CNN, images: torch.Tensor) -> list[dict]:
    """Run one batch through the layers one at a time, printing each output's shape."""
    rows, x = [], images
    print(f"  {'input':30s} {str(tuple(x.shape)):18s}")
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            parameters = dl_utils.count_parameters(layer)
            rows.append({"layer": name, "shape": list(x.shape), "parameters": parameters})
            print(f"  {name + ': ' + layer.__class__.__name__:30s} {str(tuple(x.shape)):18s} "
                  f"{parameters:>9,} parameters")
    return rows


def multiply_adds_per_image(model: CNN) -> dict:
    """How many multiply-adds one image costs in each layer (the compute, not the storage).

    A Linear layer uses each weight once per image. A conv layer uses each
    weight once per output POSITION: conv1 at 28 x 28 = 784 positions, conv2
    at 14 x 14 = 196. Few parameters, a lot of computation.
    """
    return {"conv1": model.conv1.weight.numel() * 28 * 28, "conv2": model.conv2.weight.numel() * 14 * 14,
            "fc1": model.fc1.weight.numel(), "fc2": model.fc2.weight.numel()}


def describe_model(model: CNN, data, batch_size: int) -> dict:
    """One batch's shape after every layer; the parameters and multiply-adds, next to 03's MLP."""
    print(f"One batch on its way through the layers (B = {batch_size} images):")
    first_images, _ = next(iter(data.val_loader))  # validation images: the training order stays untouched
    layer_shapes = print_shapes(model, first_images[:batch_size])
    mlp = dl_utils.SimpleNN()  # 03's MLP, 784 -> 128 -> 10 (the class 03 writes), for its counts
    mlp_layers = {"fc1": dl_utils.count_parameters(mlp.fc1), "fc2": dl_utils.count_parameters(mlp.fc2)}
    cnn_layers = {name: dl_utils.count_parameters(getattr(model, name)) for name in ("conv1", "conv2", "fc1", "fc2")}
    parameters, macs = dl_utils.count_parameters(model), multiply_adds_per_image(model)
    mlp_macs = mlp.fc1.weight.numel() + mlp.fc2.weight.numel()  # each weight used once per image
    print(f"\nParameters: CNN {parameters:,} (the two conv layers only {cnn_layers['conv1'] + cnn_layers['conv2']:,}; "
          f"fc1 alone {cnn_layers['fc1']:,}), 03's MLP {sum(mlp_layers.values()):,}.")
    print(f"Weight sharing: conv1 makes 32 x 28 x 28 = 25,088 numbers from 784 pixels with {cnn_layers['conv1']} "
          f"parameters; a Linear layer making as many would need {784 * 25088 + 25088:,}.")
    print(f"Work per image: the CNN does {sum(macs.values()):,} multiply-adds (conv2 alone {macs['conv2']:,}), "
          f"the MLP {mlp_macs:,}: {sum(macs.values()) / mlp_macs:.0f} times more, because every conv weight "
          "is used at every position. That is why a CNN epoch takes longer.")
    print("Size alone does not explain it: an MLP as big (407,050 parameters) gains about 0.3 points of validation "
          "accuracy over 03's, the CNN about 1.5 (docs/results/what_mattered.md: hidden_512, cnn_vs_mlp). "
          "Try: python 03_train_mnist.py --hidden 512")
    return {"parameters": parameters, "layer_shapes": layer_shapes, "parameters_by_layer": cnn_layers,
            "multiply_adds_per_image": macs, "mlp_layers": mlp_layers, "mlp_parameters": sum(mlp_layers.values())}


# ---------------------------------------------------------------------------
# 4. Train: 03's five-step loop, plus a learning-rate schedule
# ---------------------------------------------------------------------------
# OneCycle raises the learning rate from lr/25 to --lr over the first 30%
# of the steps (a gentle start while the weights are random), then lowers
# it to almost zero (small, careful steps at the end settle into a good
# minimum). It changes the rate after every BATCH, so its step goes inside
# the loop: below is 03's train_one_epoch with that one line added, handed
# to dl_utils.fit (03's epoch loop, harvested). --schedule constant keeps
# --lr throughout, as 03 does: compare what the schedule adds.
def train_one_epoch(model: nn.Module, loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler=None) -> dict:
    """03's train_one_epoch plus one line, `scheduler.step()`; returns the epoch's mean loss and accuracy."""
    model.train()  # dropout on
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        optimizer.zero_grad()  # 1. clear the last batch's gradients (backward() adds to them)
        logits = model(images)  # 2. forward: (B, 1, 28, 28) -> (B, 10)
        loss = loss_fn(logits, labels)  # 3. one number: how wrong
        loss.backward()  # 4. d(loss)/d(weight) for every weight
        optimizer.step()  # 5. move each weight against its gradient
        if scheduler is not None:
            scheduler.step()  # the one new line: the learning rate for the next batch

        total_loss += loss.detach() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(labels)
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


# Label smoothing (--label-smoothing 0.05): the loss's target for an image
# of a 3 is not "100% a 3" but 95.5% a 3 and 0.5% each other digit
# (1 - 0.05 + 0.05 / 10 and 0.05 / 10). Plain cross-entropy is only 0 for
# an infinitely sure answer, so it keeps pushing the logits of images it
# already gets right further apart; with smoothing there is a finite best
# answer. (0.05 was chosen on validation: LEARNING_GUIDE.md, 06.) Every loss
# 06 prints includes the smoothing, so it cannot reach 0: its floor, a right
# answer exactly as sure as the target, is printed below.
def smoothing_floor(smoothing: float, classes: int = 10) -> float:
    """The lowest smoothed cross-entropy: the entropy of the target itself (0.28 for 0.05 and 10 digits)."""
    true, other = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(true * math.log(true) + (classes - 1) * (other * math.log(other) if other else 0.0))


def train(model: CNN, data, args, device: torch.device) -> tuple[CNN, dict, dict]:
    """(the trained model, its history per epoch, its test loss and accuracy)."""
    layout = "channels_last" if args.channels_last and device.type == "cpu" else "default"
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)  # same maths, faster on a CPU (docs/PERFORMANCE.md)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    fused = args.fused and dl_utils.fused_adam_works(device)  # same rule, one kernel (docs/PERFORMANCE.md)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=fused)
    scheduler = None
    if args.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                        steps_per_epoch=len(data.train_loader))
    print(f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}: Adam{', fused' if fused else ''}, {args.schedule} "
          f"learning rate, {'peak ' if scheduler else ''}lr {args.lr:g}, batch {args.batch_size}, {layout} layout")
    if args.label_smoothing:
        print(f"Label smoothing {args.label_smoothing:g}: every loss below includes it, so a right answer scores "
              f"at best {smoothing_floor(args.label_smoothing):.3f}, not 0")
    train_loader = data.train_loader
    if args.augment:  # extras/augment.py; validation and test images stay untouched
        train_loader = augment.AugmentedLoader(train_loader, seed=args.seed)
    history = dl_utils.fit(model, train_loader, data.val_loader, loss_fn, optimizer, epochs=args.epochs,
                           train_epoch=functools.partial(train_one_epoch, scheduler=scheduler))  # ours, + schedule
    test = dl_utils.evaluate(model, data.test_loader, loss_fn)
    print(f"\nTest accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.3f}) "
          f"after {sum(history['seconds']):.1f}s of training")
    return model, history, test


# ---------------------------------------------------------------------------
# 5. What did it learn? Filters and feature maps
# ---------------------------------------------------------------------------
# The filters are the conv1 weights themselves. The feature maps are what
# the layers output for one digit (CNN.feature_maps): where each filter
# found its pattern. extras/feature_maps.py draws them as one picture.
def plot_filters(model: CNN, path, *, show: bool, note: str = "defaults") -> Path:
    """cnn_filters.png: the 32 first-layer 3x3 filters, red = positive weight, blue = negative."""
    weights = model.conv1.weight.detach().cpu()[:, 0]  # (32, 1, 3, 3) -> (32, 3, 3): one input channel
    limit = weights.abs().max().item()  # one symmetric colour scale: white is 0 in every filter
    fig = plt.figure(figsize=(10.5, 5.8))
    grid = fig.add_gridspec(4, 9, width_ratios=[1] * 8 + [0.12])  # 4 x 8 filters, then the colour bar
    for i in range(32):
        ax = fig.add_subplot(grid[i // 8, i % 8])
        image = ax.imshow(weights[i].numpy(), cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {i}", fontsize=8)
        ax.set(xticks=[], yticks=[])
    fig.colorbar(image, cax=fig.add_subplot(grid[:, 8]), label="weight")
    fig.suptitle("The 32 learned first-layer filters (3 x 3 weights each). A filter responds where the image "
                 "looks like it:\nred = bright pixel wanted there, blue = dark wanted. Red beside blue = an edge "
                 f"detector, in that direction.   (settings: {note})", fontsize=10)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 6. Where does it go wrong? Confusion matrix and the mistakes themselves
# ---------------------------------------------------------------------------
# Accuracy says HOW OFTEN the CNN is wrong; the confusion matrix (row = the
# true digit, column = its answer) says WHICH digits it takes for which.
def plot_confusion_matrix(matrix: torch.Tensor, path, *, title: str, show: bool = False) -> Path:
    """The matrix with its count in every cell; the diagonal (right answers) grey, the mistakes in reds.

    About 1,000 right answers per digit would make every mistake look pale
    on one colour scale, so the colour shows only the mistakes.
    """
    matrix = torch.as_tensor(matrix).long().cpu()
    n = matrix.shape[0]
    mistakes = matrix.clone().float()
    mistakes.fill_diagonal_(float("nan"))  # NaN cells are drawn with the colormap's "bad" colour
    fig, ax = plt.subplots(figsize=(7.6, 6.6))
    top = max(1.0, float(mistakes.nan_to_num().max()))  # the most frequent mistake: the darkest red
    image = ax.imshow(mistakes.numpy(), cmap=plt.get_cmap("Reds").with_extremes(bad="#dddddd"), vmin=0, vmax=top)
    for a in range(n):
        for b in range(n):
            count = int(matrix[a, b])
            ax.text(b, a, str(count), ha="center", va="center", fontsize=9 if a == b else 10,
                    fontweight="bold" if a == b else "normal",
                    color="white" if a != b and count > 0.6 * top else ("#999999" if count == 0 else "black"))
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted digit", ylabel="true digit", title=title)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="number of mistakes (diagonal in grey = correct)")
    bar.ax.yaxis.get_major_locator().set_params(integer=True)  # counts: no 0.5 ticks
    return dl_utils.finish_figure(fig, path, show=show)


def where_it_goes_wrong(model: CNN, data, device, out_dir: Path, *, show: bool, note: str,
                        n_mistakes: int = 24) -> dict:
    """The test predictions, the confusion matrix and its most frequent mistakes; two figures."""
    probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
    matrix = dl_utils.confusion_matrix(probabilities.argmax(dim=1), labels)
    directed = dl_utils.most_confused_pairs(matrix, k=5)
    pairs = dl_utils.most_confused_pairs(matrix, k=3, both_ways=True)
    n_wrong = int(matrix.sum() - matrix.trace())
    print(f"{n_wrong} of {len(labels):,} test digits are wrong. The most frequent mistakes (true -> predicted):")
    for true, predicted, count in directed:
        print(f"  {true} read as {predicted}: {count} times")
    pair_text = ", ".join(f"{a}/{b} ({count})" for a, b, count in pairs) or "none"
    print(f"Most confused pairs, both directions: {pair_text}. (Courses usually name 4/9, 3/5 and 7/1; "
          "these are the ones measured here.)")
    if n_wrong < 200:
        print(f"With only {n_wrong} mistakes these counts are small: another --seed may rank the pairs differently.")
    plot_confusion_matrix(matrix, out_dir / "confusion_matrix.png", show=show,
                          title=f"CNN ({note}) on the {len(labels):,} test digits: {n_wrong} mistakes\n"
                                f"most confused pairs (both directions): {pair_text}")
    wrong = dl_utils.misclassified_indices(probabilities, labels, k=n_mistakes)
    if len(wrong):
        dl_utils.plot_prediction_grid(
            data.test_loader.images[wrong.to(device)].cpu(), labels[wrong], probabilities[wrong],
            out_dir / "misclassified.png", mean=data.mean, std=data.std, show=show,
            title=f"{len(wrong)} of the CNN's {n_wrong} test mistakes ({note}), most confident first "
                  "(pred = its answer and confidence, true = the label)")
    else:  # a perfect score: still write the file, so every run leaves the same set of files
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "No test mistakes: nothing to show.", ha="center", va="center", fontsize=14)
        ax.axis("off")
        dl_utils.finish_figure(fig, out_dir / "misclassified.png", show=show)
    return {"probabilities": probabilities, "labels": labels, "record": {  # "record": for the results JSON
        "test_mistakes": n_wrong, "confusion_matrix": matrix.tolist(),
        "most_confused": [{"true": a, "predicted": b, "count": c} for a, b, c in directed],
        "most_confused_pairs": [{"digits": [a, b], "count": c} for a, b, c in pairs]}}


# ---------------------------------------------------------------------------
# 7. The MLP of 03 next to the CNN: extras/mlp_vs_cnn.py reads 03's last run
# 8. Fooling it: an adversarial example (FGSM)
# ---------------------------------------------------------------------------
# 99% accurate, yet easy to fool: move every pixel by a faint epsilon in
# the direction that raises the loss most, and many predictions flip,
# although a person still sees the same digit. The network's decision
# depends on many tiny pixel details at once, and a change aligned with
# all of them adds up. extras/adversarial.py attacks the whole test set
# with this function and draws one fooled digit; dl_utils.fgsm_attack is
# an identical copy, for 07.
def fgsm_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epsilon: float,
                mean: float, std: float) -> torch.Tensor:
    """Adversarial examples by the Fast Gradient Sign Method (Goodfellow et al., 2014).

    Training asks "how should the WEIGHTS change to lower the loss?"; FGSM
    asks backward() the opposite question about the INPUT: which way should
    each pixel move to RAISE the loss? It then moves every pixel by
    `epsilon` (in 0..1 pixel units) in that direction:
        x_adv = x + epsilon * sign(d loss / d x)
    `images` are normalised, so epsilon is divided by `std` to stay in pixel
    units, and the result is clamped to the valid pixel range [0, 1].
    """
    model.eval()
    images = images.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(images), labels)
    (gradient,) = torch.autograd.grad(loss, images)
    adversarial = images.detach() + (epsilon / std) * gradient.sign()
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    return adversarial.clamp(low, high)


def build_parser() -> argparse.ArgumentParser:
    """The settings block as flags, plus --image, a mode rather than a setting (section 9 in main)."""
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__,
                                   choices={"SCHEDULE": ("onecycle", "constant"), "PIXELS": ("natural", "shuffled"),
                                            "OPTIMIZER": ("adam",)},
                                   types=dict.fromkeys(("LABEL_SMOOTHING", "DROPOUT", "EPSILON"), dl_utils.fraction))
    parser.add_argument("--scheduler", dest="schedule", choices=("onecycle", "constant"), default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # --schedule's first-edition name, still accepted
    parser.add_argument("--image", type=Path, default=None, help="after training, classify this PNG/JPEG of a digit")
    return parser


def main(argv=None) -> dict:
    start = time.perf_counter()
    parser = build_parser()
    args = dl_utils.parse_args(parser, argv)  # --quick: 1 epoch on 5,000 images
    config = dl_utils.settings_from_args(args)  # every setting: into the checkpoint, the JSON and experiments.csv
    note = dl_utils.changed_settings(parser, args)  # e.g. "epochs 1, augment": the figures' titles carry it
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)

    dl_utils.step("1. The model")
    model = CNN(dropout=args.dropout)
    print(model)
    dl_utils.step("2. Device, seed, data")
    print(f"Device: {device} ({why}); seed {args.seed}")
    data = load_data(args, device)
    dl_utils.step("3. The model, layer by layer")
    description = describe_model(model.to(device), data, args.batch_size)
    dl_utils.step("4. Train")
    model, history, test = train(model, data, args, device)
    metrics = {"test_accuracy": test["accuracy"], "best_val_accuracy": max(history["val_accuracy"]),
               "train_seconds": sum(history["seconds"])}
    dl_utils.save_checkpoint(args.out_dir / "cnn_model.pth", model=model, arch="CNN", hyperparameters=config,
                             model_config={"dropout": args.dropout}, metrics=metrics, normalization=data.normalization)
    floor = f"\nlosses with label smoothing {args.label_smoothing:g}: floor {smoothing_floor(args.label_smoothing):.2f}"
    dl_utils.plot_training_history(history, args.out_dir / "cnn_training_history.png", show=args.show,
                                   title=f"CNN on MNIST ({note}): test accuracy {100 * test['accuracy']:.2f}%"
                                         + (floor if args.label_smoothing else ""))
    dl_utils.step("5. What did it learn? Filters and feature maps")
    plot_filters(model, args.out_dir / "cnn_filters.png", show=args.show, note=note)
    feature_maps.plot(model, data.test_loader.images[0], int(data.test_loader.labels[0]),  # the first test digit
                      args.out_dir / "cnn_feature_maps.png", mean=data.mean, std=data.std, show=args.show, note=note)
    dl_utils.step("6. Where does it go wrong?")
    predictions = where_it_goes_wrong(model, data, device, args.out_dir, show=args.show, note=note)
    dl_utils.step("7. The MLP of 03 next to the CNN")
    cnn = {**metrics, "parameters": description["parameters"], "epochs": len(history["epoch"]),
           "val_accuracy": history["val_accuracy"]}
    mlp = mlp_vs_cnn.compare(cnn, description, args.out_dir, show=args.show, note=note)
    dl_utils.step("8. Fooling it (FGSM)")
    fgsm_accuracy = adversarial.fool_it(model, data, predictions, fgsm_attack, epsilon=args.epsilon, device=device,
                                        test_accuracy=test["accuracy"], out_dir=args.out_dir, show=args.show, note=note)
    own = {}
    if args.image is not None:
        dl_utils.step("9. Your own digit")  # the steps 04 teaches, with the CNN
        own = dl_utils.classify_own_digit(model, args.image, normalization=data.normalization, device=device,
                                          out_path=args.out_dir / "own_digit.png", model_name="the CNN", show=args.show)
        print(own.pop("report"))

    results = dl_utils.summarize_run(script="06_cnn_mnist", hyperparameters=config, history=history,
                                     test_metrics=test, parameters=description["parameters"], device=device)
    results.update(fgsm_epsilon=args.epsilon, fgsm_test_accuracy=fgsm_accuracy, **own, **predictions["record"],
                   **{k: description[k] for k in ("layer_shapes", "parameters_by_layer", "multiply_adds_per_image")},
                   mlp_comparison=mlp, total_seconds=time.perf_counter() - start)
    dl_utils.save_results(args.out_dir, "06_cnn_mnist", results)
    dl_utils.log_experiment(args.out_dir, results)
    print(f"\nSaved in {args.out_dir} ({results['total_seconds']:.0f}s in all): cnn_model.pth, 06_cnn_mnist.json, "
          "cnn_training_history.png, cnn_filters.png, cnn_feature_maps.png, confusion_matrix.png, misclassified.png, "
          f"mlp_vs_cnn.png, adversarial_example.png{', own_digit.png' if own else ''}")
    print("Next: python 07_look_inside.py (what the network computes, step by step), "
          "and python exercises/check.py (the exercises)")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
