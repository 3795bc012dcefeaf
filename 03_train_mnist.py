"""03 - Train your first neural network on MNIST.

What you will learn
  * how a model is built from layers: `nn.Module`, `nn.Linear`, `nn.ReLU`
  * the five-step training loop every PyTorch model uses
    (zero_grad, forward, loss, backward, step)
  * why we keep a validation set apart, and how to save a model for 04_load_model.py
  * how changing one setting (--hidden, --optimizer, --lr, --dropout) changes the result
  * what an untrained network does (loss ~ ln 10, chance accuracy), and what
    breaks when you break one thing on purpose: --init, --labels, --loss,
    --normalize, --pixels (LEARNING_GUIDE.md "Break it on purpose")

Run first: 01_hello_pytorch.py and 02_load_mnist.py (02 downloads MNIST).

Run it
    python 03_train_mnist.py                         # the full lesson, 10 epochs
    python 03_train_mnist.py --quick                 # 1 epoch on 5,000 images: seconds
    python 03_train_mnist.py --hidden 32 --lr 0.01   # change it and rerun
    python 03_train_mnist.py --init zeros --epochs 2 --subset 5000   # break it: all neurons equal
    python 03_train_mnist.py --labels random --subset 1000 --hidden 512 --epochs 40   # memorise noise
    python 03_train_mnist.py --data-dir DATA_DIR      # MNIST kept in DATA_DIR/MNIST/raw/ (offline)
    python 03_train_mnist.py --help                  # every flag and its default

Writes (in outputs/, or --out-dir)
    mnist_model.pth        the trained weights + how they were made (read by 04)
    training_history.png   loss and accuracy per epoch, train vs validation
    03_train_mnist.json    the measured results (the docs quote this file)
    experiments.csv        one more row in your log of every training run

How long: about 10 s for the whole script on the course's 2-core CPU, about 5 s of it
training (README.md "Results" has the measured figures); --quick: a few seconds. The usual
ToTensor() + Normalize() + DataLoader pipeline made the same run about 7 times slower
(README.md "Performance": benchmarks/bench_training.py, docs/results/bench_training.json).
"""

import argparse
import time

import torch
from torch import nn

import dl_utils

# ---------------------------------------------------------------------------
# Settings: change one, rerun, compare (each has a flag; see --help)
# ---------------------------------------------------------------------------
HIDDEN = 128  # neurons in the hidden layer: more = more capacity, slower; try 32 or 512
EPOCHS = 10  # passes over the 55,000 training images; validation accuracy levels off around here
BATCH_SIZE = 128  # images per step; a CPU takes a step of 128 in little more time than one of 64: epochs ~40% shorter, same val accuracy (ML_CONCEPTS "Epochs, Batches & Iterations")
LEARNING_RATE = 1e-3  # Adam's usual starting point; 50x higher (0.05) reaches only about 68% (LEARNING_GUIDE "Learning rate too high")
OPTIMIZER = "adam"  # adam adapts a step size per weight; plain sgd needs a larger lr (try 0.1)
FUSED = True  # Adam's update in one kernel per step, not ~8 small operations per tensor: same rule, faster (--no-fused)
MOMENTUM = 0.0  # for sgd only: 0.9 lets steps build up speed along consistent directions
DROPOUT = 0.0  # probability of zeroing each hidden neuron while training (regularisation; try 0.2)
BATCH_NORM = False  # normalise the hidden layer per batch (see "Regularization")
NORMALIZE = "both"  # pixels -> (x - mean) / std; "center" (only - mean), "scale" (only / std), "none" (0..1)
PATIENCE = None  # early stopping: stop after this many epochs without a better val loss
SEED = 0  # same seed, same numbers (on the CPU)
MODEL_FILE = "mnist_model.pth"  # 04_load_model.py looks for this name
# Break it on purpose (LEARNING_GUIDE.md "Break it"): each flag spoils one thing, to see what it was for
INIT = "default"  # "zeros" or "constant" start every hidden neuron the same: they stay the same
CONSTANT_WEIGHT = 0.01  # --init constant: every weight and bias; small, so the logits start near 0
LABELS = "true"  # "random": the training labels shuffled once; validation and test keep the true ones
LABEL_SEED = 0  # the one fixed shuffle of --labels random (the same for every --seed)
LOSS = "cross_entropy"  # "mse": squared error between softmax probabilities and one-hot labels
PREVIEW_DIGITS = 10  # before training, the untrained network's guesses for this many validation digits


# ---------------------------------------------------------------------------
# 1. The model
# ---------------------------------------------------------------------------
# An MNIST image is 28 x 28 = 784 pixels. This network flattens it into a
# row of 784 numbers, mixes them into HIDDEN new features with a Linear layer
# (a matrix multiply plus a bias), bends them with ReLU (without a
# non-linearity, two Linear layers collapse into one: see "Activation
# Functions" in ML_CONCEPTS_EXPLAINED.md), and maps them to 10 scores, one
# per digit. The scores are "logits": any real numbers; the largest wins.
class SimpleNN(nn.Module):
    def __init__(self, hidden: int = HIDDEN, dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.flatten = nn.Flatten()  # (B, 1, 28, 28) -> (B, 784)
        self.fc1 = nn.Linear(28 * 28, hidden)  # 784 * hidden weights + hidden biases
        # nn.Identity passes its input through unchanged, so the layer names
        # (and so the checkpoint's keys) stay the same with or without them.
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)  # active only in model.train() mode
        self.fc2 = nn.Linear(hidden, 10)  # hidden * 10 weights + 10 biases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, 784)
        x = self.relu(self.norm(self.fc1(x)))  # (B, hidden)
        x = self.dropout(x)
        return self.fc2(x)  # (B, 10) logits


def make_optimizer(name: str, params, *, lr: float, momentum: float, fused: bool = False) -> torch.optim.Optimizer:
    """Adam, or SGD (with momentum if > 0): see "Optimizers" in ML_CONCEPTS_EXPLAINED.md.

    fused=True computes Adam's update for every weight tensor in one
    compiled kernel per step. The textbook version (fused=False, a Python
    loop over the tensors) launches about eight small operations per tensor,
    and for a network this small those launches cost more than the maths.
    Same rule, rounded in another order: the weights differ in the last
    digits, so a run with --no-fused ends a little differently.
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=fused)
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


# ---------------------------------------------------------------------------
# 1b. Break it on purpose: what --init, --labels, --loss and --normalize change
# ---------------------------------------------------------------------------
def initialise_weights(model: SimpleNN, how: str) -> None:
    """--init: "default" keeps PyTorch's random start; "zeros" sets fc1 and fc2 to 0; "constant" to CONSTANT_WEIGHT.

    Why the default is random: neurons that start equal compute the same
    output, so they get the same gradient and the same update, and stay
    equal forever ("symmetry"). 128 identical neurons are one neuron. With
    all zeros it is worse: fc2's zero weights send no gradient back to fc1,
    and fc1's zero outputs give fc2 nothing to learn from, so only fc2's
    bias moves (the network learns which digit is most common, nothing
    more). See "Initialization" in ML_CONCEPTS_EXPLAINED.md.
    """
    if how == "default":
        return
    value = 0.0 if how == "zeros" else CONSTANT_WEIGHT
    with torch.no_grad():
        for layer in (model.fc1, model.fc2):
            layer.weight.fill_(value)
            layer.bias.fill_(value)


def distinct_hidden_neurons(model: SimpleNN) -> int:
    """How many different neurons the hidden layer holds (fc1's rows, weights + bias, equal to 4 decimals); prints it."""
    rows = torch.cat([model.fc1.weight, model.fc1.bias[:, None]], dim=1).detach().cpu()  # (hidden, 785)
    distinct, hidden = len(torch.unique(torch.round(rows, decimals=4), dim=0)), len(rows)
    print(f"Distinct hidden neurons: {distinct} of {hidden}"
          + (" (they started equal, so they stayed equal: symmetry)" if distinct < hidden else ""))
    return distinct


def shuffle_training_labels(loader, seed: int = LABEL_SEED) -> float:
    """--labels random: give every training image the label of another one (one fixed shuffle).

    The images and the digit counts stay the same; only which image has
    which label is lost, so there is nothing left to learn, only to
    memorise. Returns the fraction of images that kept their true label (~10%).
    """
    order = torch.randperm(len(loader.labels), generator=torch.Generator().manual_seed(seed))
    shuffled = loader.labels[order.to(loader.labels.device)]
    kept = (shuffled == loader.labels).float().mean().item()
    loader.labels = shuffled
    loader.dataset = torch.utils.data.TensorDataset(loader.images, shuffled)
    print(f"Random labels: the training labels are shuffled; {100 * kept:.1f}% happen to be right. "
          "Validation and test keep the true labels.")
    return kept


class SoftmaxMSELoss(nn.Module):
    """--loss mse: mean squared error between the softmax probabilities (B, 10) and one-hot labels (B, 10).

    It learns, but slowly. Cross-entropy's gradient for the logits is
    (probabilities - one_hot): a confidently wrong answer gets a push of
    nearly 1. Squared error's gradient goes through softmax's slope,
    p * (1 - p), which is near 0 exactly when p is near 0 or 1: the more
    confidently wrong a prediction, the less it is corrected ("Loss Functions").
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits, dim=1)
        one_hot = nn.functional.one_hot(labels, num_classes=logits.shape[1]).to(probabilities.dtype)
        return nn.functional.mse_loss(probabilities, one_hot)  # mean over the B x 10 numbers


def make_loss(name: str) -> nn.Module:
    """cross_entropy: CrossEntropyLoss takes the raw logits and applies log-softmax itself, in a
    numerically safe way (see "Loss Functions"); mse: SoftmaxMSELoss above."""
    return nn.CrossEntropyLoss() if name == "cross_entropy" else SoftmaxMSELoss()


def pixel_normalization(how: str, args) -> dict | None:
    """--normalize: the {"mean", "std"} that load_mnist_data applies as (x - mean) / std, x in [0, 1].

    "both" (None): load_mnist_data computes mean and std from the training
    images. The others isolate the two halves: "center" subtracts the mean
    only (std 1), "scale" divides by the std only (mean 0), "none" feeds
    x as it is, in [0, 1]. The statistics come from the training images
    only, as in load_mnist_data.
    """
    if how == "both":
        return None
    if how == "none":
        return {"mean": 0.0, "std": 1.0}
    images, _ = dl_utils.read_mnist(args.data_dir, train=True)
    train_idx, _ = dl_utils.split_indices(len(images))
    mean, std = dl_utils.normalization_stats(images[train_idx[:args.subset]])  # [:None] keeps all
    return {"mean": mean, "std": 1.0} if how == "center" else {"mean": 0.0, "std": std}


def describe_inputs(how: str, data) -> str:
    return {"both": f"Normalisation from the training images: mean {data.mean:.4f}, std {data.std:.4f}",
            "center": f"Centred only: x - {data.mean:.4f} (not divided by the std)",
            "scale": f"Scaled only: x / {data.std:.4f} (not centred: every input still >= 0)",
            "none": "No normalisation: the network sees raw pixel values in [0, 1]"}[how]


def report_untrained(model: nn.Module, data, loss_fn: nn.Module, loss_name: str, device) -> dict:
    """Before the first step: what does the network do with its random weights?"""
    before = dl_utils.evaluate_model(model, data.val_loader, loss_fn=loss_fn, device=device)
    images, labels = data.val_loader.images[:PREVIEW_DIGITS], data.val_loader.labels[:PREVIEW_DIGITS]
    with torch.no_grad():  # evaluate_model has put the model in eval() mode
        probabilities = torch.softmax(model(images), dim=1)
    confidence, guesses = probabilities.max(dim=1)
    print(f"\nBefore training: validation loss {before['loss']:.3f}, accuracy {100 * before['accuracy']:.2f}%")
    if loss_name == "cross_entropy":
        # Small random weights give 10 nearly equal logits, so softmax gives every
        # digit about 1/10, and the loss, -ln(probability of the true digit), is
        # about -ln(1/10) = ln 10 = 2.303. Accuracy: one right guess in 10.
        print("  (ln 10 = 2.303: nearly equal scores give every digit ~1/10, and -ln(1/10) = ln 10; "
              "chance accuracy is 10%)")
    else:  # mse: probabilities ~1/10 against one-hot: ((1 - 0.1)^2 + 9 * 0.1^2) / 10 = 0.09
        print("  (squared error: ~1/10 for every digit against a one-hot label gives (0.9^2 + 9 * 0.1^2) / 10 = 0.09; "
              "its gradient fades when a prediction is confidently wrong, so it learns more slowly: SoftmaxMSELoss)")
    print(f"  true digits:  {' '.join(str(int(d)) for d in labels)}")
    print(f"  its guesses:  {' '.join(str(int(g)) for g in guesses)}   "
          f"({int((guesses == labels).sum())} of {len(labels)} right; confidence "
          f"{100 * confidence.min():.0f}-{100 * confidence.max():.0f}%: it has learnt nothing yet)")
    return {"val_loss": before["loss"], "val_accuracy": before["accuracy"],
            "labels": labels.tolist(), "guesses": guesses.tolist(), "confidence": confidence.tolist()}


# ---------------------------------------------------------------------------
# 2. The training loop: five steps for every batch
# ---------------------------------------------------------------------------
# This is THE loop of deep learning; every model in this course learns with
# it (05 and 06 use the same steps in dl_utils.train_epoch). Write it from
# memory once you have read it: exercises/ex03 checks your version.
def train_one_epoch(model: nn.Module, loader, loss_fn: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """One pass over the training images; returns the epoch's mean loss and accuracy."""
    model.train()  # dropout and batch norm switch to their training behaviour
    # The running totals become tensors on the model's device at the first
    # batch (0 + tensor is a tensor). Calling .item() on every batch instead
    # would make a GPU wait for each step to finish before starting the next.
    total_loss, correct, seen = 0, 0, 0
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a small neural network on MNIST.")
    dl_utils.add_common_args(parser, seed=SEED, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE)
    parser.add_argument("--hidden", type=dl_utils.positive_int, default=HIDDEN,
                        help="neurons in the hidden layer (default: %(default)s)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=OPTIMIZER,
                        help="how the weights are updated (default: %(default)s)")
    parser.add_argument("--no-fused", dest="fused", action="store_false", default=FUSED,
                        help="Adam's textbook for-loop update instead of the fused kernel: the same rule, slower")
    parser.add_argument("--momentum", type=dl_utils.fraction, default=MOMENTUM,
                        help="SGD momentum, e.g. 0.9 (default: %(default)s)")
    parser.add_argument("--dropout", type=dl_utils.fraction, default=DROPOUT,
                        help="dropout probability after the hidden layer (default: %(default)s)")
    parser.add_argument("--batch-norm", action="store_true", default=BATCH_NORM,
                        help="add batch normalisation after the first layer")
    parser.add_argument("--normalize", choices=["both", "center", "scale", "none"], default=NORMALIZE,
                        help="how pixels in [0, 1] are fed: both = (x - mean) / std, center = x - mean, "
                             "scale = x / std, none = x (default: %(default)s)")
    parser.add_argument("--no-normalize", dest="normalize", action="store_const", const="none",
                        help="the same as --normalize none: raw pixel values in [0, 1]")
    parser.add_argument("--init", choices=["default", "zeros", "constant"], default=INIT,
                        help="break it: start fc1 and fc2 random (default), all 0, or all "
                             f"{CONSTANT_WEIGHT} (default: %(default)s)")
    parser.add_argument("--labels", choices=["true", "random"], default=LABELS,
                        help="break it: random = shuffle the training labels once, so there is nothing to "
                             "learn, only to memorise (default: %(default)s)")
    parser.add_argument("--loss", choices=["cross_entropy", "mse"], default=LOSS,
                        help="break it: mse = squared error between softmax probabilities and one-hot labels "
                             "(default: %(default)s)")
    parser.add_argument("--patience", type=dl_utils.positive_int, default=PATIENCE,
                        help="early stopping: epochs without a better validation loss before "
                             "stopping and restoring the best weights (default: off)")
    return parser


def load_data(args, device: torch.device):
    """MNIST as three in-memory loaders (dl_utils.load_mnist_data), spoiled as the flags ask; prints what it got."""
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels,
                                    normalization=pixel_normalization(args.normalize, args))
    n_train, n_val = len(data.train_loader.dataset), len(data.val_loader.dataset)
    print(f"Data: {n_train:,} training, {n_val:,} validation, {len(data.test_loader.dataset):,} test images; "
          f"{len(data.train_loader)} batches of up to {args.batch_size} per epoch")
    print(describe_inputs(args.normalize, data))
    if args.labels == "random":
        shuffle_training_labels(data.train_loader)
    return data


def main(argv=None) -> dict:
    parser = build_parser()
    args = dl_utils.parse_args(parser, argv)
    if args.momentum and args.optimizer != "sgd":
        raise dl_utils.CourseError("--momentum only applies to --optimizer sgd (Adam has its own momentum).")
    # Every setting of this run, read from the flags (nanoGPT's habit): it goes
    # into the checkpoint, the JSON and experiments.csv, so a flag you add to
    # build_parser() is recorded with no other edit.
    config = dl_utils.settings_from_args(args)

    # -----------------------------------------------------------------------
    # 3. Device, seed, data
    # -----------------------------------------------------------------------
    dl_utils.set_seed(args.seed)  # fixes the initial weights and the shuffling
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    data = load_data(args, device)

    # -----------------------------------------------------------------------
    # 4. Model, loss, optimizer
    # -----------------------------------------------------------------------
    model_config = {"hidden": args.hidden, "dropout": args.dropout, "batch_norm": args.batch_norm}
    model = SimpleNN(**model_config).to(device)
    initialise_weights(model, args.init)
    parameters = dl_utils.count_parameters(model)
    print(model)
    # With hidden=128: (784*128 + 128) + (128*10 + 10) = 100,480 + 1,290 = 101,770.
    print(f"Parameters: {parameters:,}")

    loss_fn = make_loss(args.loss)  # CrossEntropyLoss unless --loss mse
    fused = args.fused and args.optimizer == "adam" and dl_utils.fused_adam_works(device)
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr=args.lr, momentum=args.momentum, fused=fused)
    before_training = report_untrained(model, data, loss_fn, args.loss, device)

    # -----------------------------------------------------------------------
    # 5. Train: train_one_epoch (section 2) once per epoch
    # -----------------------------------------------------------------------
    # dl_utils.train_model calls our loop, then scores the model on the
    # validation images it never trains on, and keeps the history. What to
    # notice: train accuracy keeps rising; validation accuracy levels off.
    # The gap between them is overfitting starting.
    print(f"\nTraining for {args.epochs} epochs ({args.optimizer}{', fused' if fused else ''}, lr {args.lr:g}, "
          f"batch {args.batch_size})")
    history = dl_utils.train_model(model, data.train_loader, data.val_loader, loss_fn=loss_fn,
                                   optimizer=optimizer, epochs=args.epochs, device=device,
                                   patience=args.patience, epoch_fn=train_one_epoch)

    # -----------------------------------------------------------------------
    # 6. The final exam: the test set, used once, at the very end
    # -----------------------------------------------------------------------
    # Every choice above (epochs, lr, hidden) may have been tuned by looking
    # at validation accuracy; the 10,000 test images have not been looked at,
    # so their score is an honest estimate of accuracy on new digits.
    test = dl_utils.evaluate_model(model, data.test_loader, loss_fn=loss_fn, device=device)
    print(f"\nTest accuracy: {100 * test['accuracy']:.2f}% (loss {test['loss']:.3f}) "
          f"after {sum(history['seconds']):.1f}s of training")
    distinct = distinct_hidden_neurons(model)  # 1 after --init zeros or constant

    # -----------------------------------------------------------------------
    # 7. Save: weights + how to rebuild them + results
    # -----------------------------------------------------------------------
    metrics = {"test_accuracy": test["accuracy"], "best_val_accuracy": max(history["val_accuracy"]),
               "train_seconds": sum(history["seconds"])}
    checkpoint_path = dl_utils.save_checkpoint(
        args.out_dir / MODEL_FILE, model=model, arch="SimpleNN", model_config=model_config,
        hyperparameters=config, metrics=metrics, normalization=data.normalization)
    plot_path = dl_utils.plot_training_history(
        history, args.out_dir / "training_history.png", show=args.show,
        title=f"SimpleNN on MNIST ({dl_utils.changed_settings(parser, args)}): "
              f"test accuracy {100 * test['accuracy']:.2f}%")
    results = {**dl_utils.summarize_run(script="03_train_mnist", hyperparameters=config, history=history,
                                        test_metrics=test, parameters=parameters, device=device),
               "checkpoint_kb": round(checkpoint_path.stat().st_size / 1024),
               "before_training": before_training, "distinct_hidden_neurons": distinct}
    dl_utils.save_results(args.out_dir, "03_train_mnist", results)
    dl_utils.log_experiment(args.out_dir, results)
    print(f"Saved {checkpoint_path.name} ({checkpoint_path.stat().st_size / 1024:.0f} KB), "
          f"{plot_path.name} and 03_train_mnist.json in {args.out_dir}")
    print("Next: python 04_load_model.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
