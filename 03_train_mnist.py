"""03 - Train your first neural network on MNIST.

What you will learn
  * how a model is built from layers: `nn.Module`, `nn.Linear`, `nn.ReLU`
  * the five-step training loop every PyTorch model uses (zero_grad, forward, loss, backward, step),
    and the epoch loop around it: validation after every epoch, early stopping
  * why a validation set is kept apart, why the test set is read once, and how to save a model for 04
  * how changing one setting (--hidden, --optimizer, --lr, --dropout) changes the result
  * what breaks when you break one thing on purpose (--init, --labels, --loss, --normalize, --pixels)

Run first: 01_hello_pytorch.py and 02_load_mnist.py (02 downloads MNIST).

Run it
    python 03_train_mnist.py                         # the full lesson: 10 epochs
    python 03_train_mnist.py --quick                 # 1 epoch on 5,000 images: seconds
    python 03_train_mnist.py --hidden 32 --lr 0.01   # change it and rerun
    python 03_train_mnist.py --init zeros --epochs 2 --subset 5000   # break it: all neurons equal
    python 03_train_mnist.py --data-dir DATA_DIR      # MNIST kept in DATA_DIR/MNIST/raw/ (offline)
    python 03_train_mnist.py --help                  # every setting, its default and why

Writes (in outputs/, or --out-dir)
    mnist_model.pth        the trained weights + how they were made (read by 04)
    training_history.png   loss and accuracy per epoch, train vs validation
    03_train_mnist.json    the measured results (the docs quote this file)
    experiments.csv        one more row in your log of every training run

How long: under a minute on a laptop CPU; --quick a few seconds (docs/PERFORMANCE.md has timings).
"""

import argparse
import copy
import math
import time

import torch
from torch import nn

import dl_utils

# ---------------------------------------------------------------------------
# Settings: change one, rerun, compare. dl_utils.build_parser turns each
# UPPERCASE line into a flag (HIDDEN -> --hidden, default 128, its comment as
# the --help text), and every one is recorded with the results. The code reads
# the flag's value, args.hidden, never HIDDEN: a flag can change it.
# ---------------------------------------------------------------------------
HIDDEN = 128  # neurons in the hidden layer: more = more capacity, slower; try 32 or 512
EPOCHS = 10  # passes over the 55,000 training images; validation accuracy levels off around here
BATCH_SIZE = dl_utils.BATCH_SIZE  # images per step (64): each step averages the gradient over them
LR = 1e-3  # learning rate: Adam's usual starting point; try 0.05 to see a step that is too big
OPTIMIZER = "adam"  # adam adapts a step size per weight; plain sgd needs a larger lr (try 0.1)
MOMENTUM = 0.0  # sgd only: 0.9 lets steps build up speed along consistent directions
FUSED = True  # speed only: Adam's update in one kernel, the same rule (docs/PERFORMANCE.md)
DROPOUT = 0.0  # probability of zeroing each hidden neuron while training (regularisation; try 0.2)
BATCH_NORM = False  # normalise the hidden layer over each batch (ML_CONCEPTS "Regularization")
PATIENCE = 0  # early stopping: stop after this many epochs without a better val loss (0 = off)
SUBSET = 0  # train on only the first N training images, for a quick look (0 = all 55,000)
SEED = 0  # same seed, same numbers (on the CPU): the initial weights and the shuffling
PREVIEW_DIGITS = 10  # before training, the untrained network's guesses for this many validation digits
MODEL_FILE = "mnist_model.pth"  # 04_load_model.py looks for this name


# ---------------------------------------------------------------------------
# 1. The model: 784 pixels -> 128 features -> ReLU -> 10 scores
# ---------------------------------------------------------------------------
# An MNIST image is 28 x 28 = 784 pixels. The network flattens it into a row
# of 784 numbers, mixes them into `hidden` new features with a Linear layer
# (a matrix multiply plus a bias), bends them with ReLU (without it, two
# Linear layers collapse into one: ML_CONCEPTS "Activation Functions"), and
# maps them to 10 scores, one per digit. The scores are "logits": any real
# numbers; the largest wins. dl_utils.SimpleNN is a copy of this class, so
# that 05 and 07 can rebuild it without importing this file.
class SimpleNN(nn.Module):
    def __init__(self, hidden: int = 128, dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)  # 784 * hidden weights + hidden biases
        # Two optional layers, built only when asked for (--batch-norm, --dropout),
        # so print(model) shows only layers that do something.
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else None
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None  # active only in model.train() mode
        self.fc2 = nn.Linear(hidden, 10)  # hidden * 10 weights + 10 biases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x.flatten(start_dim=1))  # (B, 1, 28, 28) -> (B, 784) -> (B, hidden)
        if self.norm is not None:
            x = self.norm(x)
        x = self.relu(x)  # negative features become 0
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc2(x)  # (B, 10) logits


# ---------------------------------------------------------------------------
# 2. The training loop: five steps for every batch
# ---------------------------------------------------------------------------
# This is THE loop of deep learning; every model in this course learns with
# it (05-07 use these three functions, copied into dl_utils). Write it from
# memory once you have read it: exercises/ex03 checks your version.
def train_one_epoch(model: nn.Module, loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """One pass over the training images; returns the epoch's mean loss and accuracy."""
    model.train()  # dropout and batch norm switch to their training behaviour
    # The totals become tensors at the first batch (0.0 + tensor is a tensor).
    # Calling .item() on every batch instead would make a GPU wait for each step.
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:  # images (B, 1, 28, 28), labels (B,): already on the device
        optimizer.zero_grad()  # 1. gradients ADD UP across backward() calls: clear the last batch's
        logits = model(images)  # 2. forward pass: (B, 10) scores, one per digit
        loss = loss_fn(logits, labels)  # 3. one number: how wrong, averaged over the batch
        loss.backward()  # 4. backpropagation: d(loss)/d(weight) for every weight, into .grad
        optimizer.step()  # 5. move every weight a little against its gradient

        total_loss += loss.detach() * len(labels)  # undo the batch mean: the epoch's mean is per image
        correct += (logits.argmax(dim=1) == labels).sum()  # the highest score is the prediction
        seen += len(labels)
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


# Evaluation runs the same forward pass with learning switched off:
# model.eval() turns dropout off (and makes batch norm use its running
# statistics); torch.inference_mode() records no graph for backward():
# less memory, more speed, and no way to train by mistake.
def evaluate(model: nn.Module, loader, loss_fn: nn.Module) -> dict:
    """Mean loss and accuracy on `loader`, without training."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for images, labels in loader:
            logits = model(images)
            total_loss += loss_fn(logits, labels) * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


# The epoch loop: train one epoch, then score the model on the 5,000
# validation images it never trains on. What to notice: train accuracy keeps
# rising; validation accuracy levels off, and the gap is overfitting
# starting. Early stopping (--patience N) stops once the validation loss has
# not improved for N epochs; with --patience, the weights you keep are the
# best epoch's (lowest validation loss), whether it stopped early or not.
def fit(model: nn.Module, train_loader, val_loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, *,
        epochs: int, patience: int = 0) -> dict:
    """Train for `epochs`, validating after each; returns the history (a list per measurement)."""
    history = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [], "seconds": []}
    best_loss, best_epoch, best_weights = math.inf, 0, None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train = train_one_epoch(model, train_loader, loss_fn, optimizer)
        if not math.isfinite(train["loss"]):  # NaN: every weight it touched is garbage now
            raise dl_utils.CourseError(dl_utils.nan_message(epoch, optimizer))
        val = evaluate(model, val_loader, loss_fn)
        seconds = time.perf_counter() - start
        for key, value in (("epoch", epoch), ("train_loss", train["loss"]), ("train_accuracy", train["accuracy"]),
                           ("val_loss", val["loss"]), ("val_accuracy", val["accuracy"]), ("seconds", seconds)):
            history[key].append(value)
        print(dl_utils.format_epoch(epoch, epochs, train, val, seconds))

        if val["loss"] < best_loss:  # the best so far: keep a copy (training goes on changing the weights)
            best_loss, best_epoch = val["loss"], epoch
            best_weights = copy.deepcopy(model.state_dict()) if patience else None
        elif patience and epoch - best_epoch >= patience:
            print(f"Early stopping: validation loss has not improved for {patience} epochs; "
                  f"restoring the weights of epoch {best_epoch}.")
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    history["best_epoch"], history["stopped_early"] = best_epoch, epoch < epochs
    return history


# The optimizer holds the rule that turns gradients into weight changes
# (ML_CONCEPTS "Optimizers"). Loss: CrossEntropyLoss takes the raw logits and
# applies log-softmax itself, in a numerically safe way ("Loss Functions").
def make_optimizer(model: nn.Module, args, device) -> torch.optim.Optimizer:
    """Adam (the default), or SGD with optional momentum."""
    if args.optimizer == "adam":
        fused = args.fused and dl_utils.fused_adam_works(device)  # falls back where fused Adam is missing
        return torch.optim.Adam(model.parameters(), lr=args.lr, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)


# ---------------------------------------------------------------------------
# 3. Before the first step: what does a random network do?
# ---------------------------------------------------------------------------
def report_untrained(model: nn.Module, data, loss_fn: nn.Module, n_digits: int = PREVIEW_DIGITS) -> dict:
    """The untrained network's validation loss and accuracy, and its guesses for a few digits."""
    before = evaluate(model, data.val_loader, loss_fn)
    images, labels = data.val_loader.images[:n_digits], data.val_loader.labels[:n_digits]  # the first few
    with torch.inference_mode():
        confidence, guesses = torch.softmax(model(images), dim=1).max(dim=1)  # (n_digits,) each
    print(f"Validation loss {before['loss']:.3f}, accuracy {100 * before['accuracy']:.2f}%")
    # Small random weights give 10 nearly equal logits, so softmax gives every
    # digit about 1/10 and the loss, -ln(probability of the true digit), is
    # about -ln(1/10) = ln 10 = 2.303 (with --loss mse: 0.09, see SoftmaxMSELoss).
    cross_entropy = isinstance(loss_fn, nn.CrossEntropyLoss)
    start = "cross-entropy starts near ln 10 = 2.303" if cross_entropy else "MSE starts near 0.09"
    print(f"  ({start}: every digit gets ~1/10; chance accuracy is 10%)")
    print(f"  true digits: {' '.join(str(int(d)) for d in labels)}")
    low, high = f"{100 * confidence.min():.1f}%", f"{100 * confidence.max():.1f}%"
    print(f"  its guesses: {' '.join(str(int(g)) for g in guesses)}   ({int((guesses == labels).sum())} right; "
          f"confidence {low if low == high else f'{low} to {high}'})")
    return {"val_loss": before["loss"], "val_accuracy": before["accuracy"],
            "labels": labels.tolist(), "guesses": guesses.tolist(), "confidence": confidence.tolist()}


def parse_settings(argv):
    """The settings above (and the break-it ones at the end) as flags: returns (parser, args)."""
    parser = dl_utils.build_parser(__doc__.splitlines()[0], dl_utils.collect_settings(globals()), source=__file__,
                                   choices=CHOICES)
    parser.add_argument("--no-normalize", dest="normalize", action="store_const", const="none",
                        default=argparse.SUPPRESS, help="the same as --normalize none: raw pixel values in [0, 1]")
    args = dl_utils.parse_args(parser, argv)
    if args.momentum and args.optimizer != "sgd":
        raise dl_utils.CourseError("--momentum only applies to --optimizer sgd (Adam has its own momentum).")
    return parser, args


def main(argv=None) -> dict:
    parser, args = parse_settings(argv)
    config = dl_utils.settings_from_args(args)  # every setting, recorded with the results (nanoGPT's habit)
    dl_utils.step(f"1. Device, seed, data (settings: {dl_utils.changed_settings(parser, args)})")
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels)
    print(f"{len(data.train_loader.labels):,} training, {len(data.val_loader.labels):,} validation and "
          f"{len(data.test_loader.labels):,} test images; {len(data.train_loader)} batches per epoch")
    break_the_data(data, args)  # does nothing unless you ask (--normalize, --labels: end of this file)

    dl_utils.step("2. Model, loss, optimizer")
    model_config = {"hidden": args.hidden, "dropout": args.dropout, "batch_norm": args.batch_norm}
    model = SimpleNN(**model_config).to(device)
    initialise_weights(model, args.init, args.constant_weight)  # PyTorch's random start unless --init says otherwise
    parameters = dl_utils.count_parameters(model)  # hidden 128: (784*128 + 128) + (128*10 + 10) = 101,770
    print(f"{model}\nParameters: {parameters:,}")
    loss_fn = nn.CrossEntropyLoss() if args.loss == "cross_entropy" else SoftmaxMSELoss()
    optimizer = make_optimizer(model, args, device)

    dl_utils.step("3. Before training")
    before_training = report_untrained(model, data, loss_fn, args.preview_digits)

    dl_utils.step(f"4. Train: {args.epochs} epochs of {args.optimizer}, lr {args.lr:g}, batch {args.batch_size}")
    history = fit(model, data.train_loader, data.val_loader, loss_fn, optimizer,
                  epochs=args.epochs, patience=args.patience)

    # Every choice above may have been tuned by looking at validation accuracy;
    # the 10,000 test images have not been looked at, so their score is an
    # honest estimate of accuracy on new digits. Read it once, at the end.
    dl_utils.step("5. The final exam: the test set, read once")
    test = evaluate(model, data.test_loader, loss_fn)
    print(f"Test accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.3f}) "
          f"after {sum(history['seconds']):.1f}s of training")
    distinct = distinct_hidden_neurons(model) if args.init != "default" else None

    dl_utils.step("6. Save: the weights, how to rebuild them, the results")
    metrics = {"test_accuracy": test["accuracy"], "best_val_accuracy": max(history["val_accuracy"]),
               "train_seconds": sum(history["seconds"])}
    checkpoint_path = dl_utils.save_checkpoint(  # weights + everything 04 needs to rebuild and trust them
        args.out_dir / args.model_file, model=model, arch="SimpleNN", model_config=model_config,
        hyperparameters=config, metrics=metrics, normalization=data.normalization)
    plot_path = dl_utils.plot_training_history(
        history, args.out_dir / "training_history.png", show=args.show,
        title=f"SimpleNN on MNIST ({dl_utils.changed_settings(parser, args)}): "
              f"test accuracy {100 * test['accuracy']:.2f}%")
    results = {**dl_utils.summarize_run(script="03_train_mnist", hyperparameters=config, history=history,
                                        test_metrics=test, parameters=parameters, device=device),
               "before_training": before_training, "distinct_hidden_neurons": distinct}
    dl_utils.save_results(args.out_dir, "03_train_mnist", results)
    dl_utils.log_experiment(args.out_dir, results)
    print(f"Saved {checkpoint_path.name} ({checkpoint_path.stat().st_size // 1024} KB), {plot_path.name}, "
          f"03_train_mnist.json and a row of experiments.csv in {args.out_dir}\nNext: python 04_load_model.py")
    return results


# ---------------------------------------------------------------------------
# Break it on purpose (LEARNING_GUIDE.md "Break it on purpose")
# ---------------------------------------------------------------------------
# Each setting below spoils one thing, to show what it was for. They are
# flags like the ones above (--init zeros); by default they change nothing.
INIT = "default"  # break it: "zeros" or "constant" start every hidden neuron the same, so they stay the same
CONSTANT_WEIGHT = 0.01  # --init constant: every weight and bias; small, so the logits start near 0
LABELS = "true"  # break it: "random" shuffles the training labels once: nothing to learn, only to memorise
LABEL_SEED = 0  # the one fixed shuffle of --labels random (the same for every --seed)
LOSS = "cross_entropy"  # break it: "mse" = squared error between softmax probabilities and one-hot labels
NORMALIZE = "both"  # pixels -> (x - mean) / std; break it: "center" (- mean only), "scale" (/ std only), "none"
PIXELS = "natural"  # break it: "shuffled" moves the 784 pixels of every image by one fixed permutation
CHOICES = {"OPTIMIZER": ("adam", "sgd"), "INIT": ("default", "zeros", "constant"), "LABELS": ("true", "random"),
           "LOSS": ("cross_entropy", "mse"), "NORMALIZE": ("both", "center", "scale", "none"),
           "PIXELS": ("natural", "shuffled")}


def initialise_weights(model: SimpleNN, how: str, constant: float = CONSTANT_WEIGHT) -> None:
    """--init zeros / constant: fill fc1 and fc2 with one value.

    Why the default is random: neurons that start equal compute the same
    output, get the same gradient and the same update, and stay equal for
    ever ("symmetry"): 128 identical neurons are one neuron. With all zeros
    it is worse: fc2's zero weights send no gradient back to fc1, so only
    fc2's bias moves (ML_CONCEPTS "Initialization").
    """
    if how == "default":
        return
    value = 0.0 if how == "zeros" else constant
    with torch.no_grad():
        for layer in (model.fc1, model.fc2):
            layer.weight.fill_(value)
            layer.bias.fill_(value)


def distinct_hidden_neurons(model: SimpleNN) -> int:
    """How many different neurons the hidden layer holds (fc1's rows, weights + bias, to 4 decimals)."""
    rows = torch.cat([model.fc1.weight, model.fc1.bias[:, None]], dim=1).detach().cpu()  # (hidden, 785)
    distinct = len(torch.unique(torch.round(rows, decimals=4), dim=0))
    print(f"Distinct hidden neurons: {distinct} of {len(rows)}"
          + (" (they started equal, so they stayed equal: symmetry)" if distinct < len(rows) else ""))
    return distinct


def break_the_data(data, args) -> None:
    """--normalize and --labels random: change the loaded data in place (nothing is read twice).

    The loaders hold z = (x - mean) / std. Undoing part of that gives the
    other inputs: x - mean = z * std ("center"), x / std = z + mean / std
    ("scale"), x = z * std + mean ("none", raw pixels in [0, 1]).
    """
    mean, std = data.mean, data.std
    for loader in (data.train_loader, data.val_loader, data.test_loader):
        z = loader.images
        loader.images = {"both": z, "center": z * std, "scale": z + mean / std, "none": z * std + mean}[args.normalize]
    # What the model now expects, stored in the checkpoint for 04: input = (x - mean) / std
    data.mean, data.std = {"both": (mean, std), "center": (mean, 1.0), "scale": (0.0, std),
                           "none": (0.0, 1.0)}[args.normalize]
    if args.normalize != "both":
        print(f"--normalize {args.normalize}: the network sees (x - {data.mean:.4f}) / {data.std:.4f}, x in [0, 1]")
    if args.labels == "random":  # the images and digit counts stay; which image has which label is lost
        train = data.train_loader
        order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(args.label_seed))
        shuffled = train.labels[order.to(train.labels.device)]
        right = 100 * (shuffled == train.labels).float().mean()  # about 1 in 10 land on their own digit
        print(f"--labels random: the training labels are shuffled; {right:.1f}% "
              "happen to be right. Validation and test keep the true labels.")
        train.labels = shuffled


class SoftmaxMSELoss(nn.Module):
    """--loss mse: mean squared error between softmax probabilities (B, 10) and one-hot labels (B, 10).

    It learns, but slowly. Cross-entropy's gradient for the logits is
    (probabilities - one_hot): a confidently wrong answer gets a push of
    nearly 1. Squared error's gradient goes through softmax's slope,
    p * (1 - p), which is near 0 when p is near 0 or 1: the more confidently
    wrong a prediction, the less it is corrected (ML_CONCEPTS "Loss Functions").
    An untrained network scores ((1 - 0.1)^2 + 9 * 0.1^2) / 10 = 0.09.
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits, dim=1)
        one_hot = nn.functional.one_hot(labels, num_classes=logits.shape[1]).to(probabilities.dtype)
        return nn.functional.mse_loss(probabilities, one_hot)  # mean over the B x 10 numbers


if __name__ == "__main__":
    dl_utils.run(main)
