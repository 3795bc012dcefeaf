"""03 - Train your first neural network on MNIST.

What you will learn
  * how a model is built from layers: `nn.Module`, `nn.Linear`, `nn.ReLU`
  * the five-step training loop every PyTorch model uses
    (zero_grad, forward, loss, backward, step)
  * why we keep a validation set apart, and read it after every epoch
  * how to save a model so that 04_load_model.py can use it later
  * how changing one hyperparameter (hidden size, optimizer, learning rate,
    dropout) changes the result: every setting below has a flag

Run first: 01_hello_pytorch.py and 02_load_mnist.py (02 downloads MNIST).

Run it
    python 03_train_mnist.py                         # the full lesson, 10 epochs
    python 03_train_mnist.py --quick                 # 1 epoch on 5,000 images: seconds
    python 03_train_mnist.py --hidden 32 --lr 0.01   # change it and rerun
    python 03_train_mnist.py --data-dir ../shared/data   # MNIST kept elsewhere (offline)
    python 03_train_mnist.py --help                  # every flag and its default

Writes (in outputs/, or --out-dir)
    mnist_model.pth        the trained weights + how they were made (read by 04)
    training_history.png   loss and accuracy per epoch, train vs validation
    03_train_mnist.json    the measured results (the docs quote this file)
    experiments.csv        one more row in your log of every training run

How long: 16.1 s for the whole script, 11.0 s of it training, measured on the course's
2-core CPU (README.md "Results"); --quick: 5.1 s.
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
BATCH_SIZE = 64  # images per step: small batches = many noisy steps, large = few smooth ones
LEARNING_RATE = 1e-3  # Adam's usual starting point; measured: 50x higher (0.05) reaches only 68.10%
OPTIMIZER = "adam"  # adam adapts a step size per weight; plain sgd needs a larger lr (try 0.1)
MOMENTUM = 0.0  # for sgd only: 0.9 lets steps build up speed along consistent directions
DROPOUT = 0.0  # probability of zeroing each hidden neuron while training (regularisation; try 0.2)
BATCH_NORM = False  # normalise the hidden layer per batch (see "Regularization")
NORMALIZE = True  # shift/scale pixels to mean 0, std 1 (see "Normalization"); --no-normalize feeds 0..1
PATIENCE = None  # early stopping: stop after this many epochs without a better val loss
SEED = 0  # same seed, same numbers (on the CPU)
MODEL_FILE = "mnist_model.pth"  # 04_load_model.py looks for this name


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


def make_optimizer(name: str, params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """Adam, or SGD (with momentum if > 0): see "Optimizers" in ML_CONCEPTS_EXPLAINED.md."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


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
    parser.add_argument("--momentum", type=dl_utils.fraction, default=MOMENTUM,
                        help="SGD momentum, e.g. 0.9 (default: %(default)s)")
    parser.add_argument("--dropout", type=dl_utils.fraction, default=DROPOUT,
                        help="dropout probability after the hidden layer (default: %(default)s)")
    parser.add_argument("--batch-norm", action="store_true", default=BATCH_NORM,
                        help="add batch normalisation after the first layer")
    parser.add_argument("--no-normalize", dest="normalize", action="store_false", default=NORMALIZE,
                        help="feed raw pixel values in [0, 1] instead of normalised ones, to see what it changes")
    parser.add_argument("--patience", type=dl_utils.positive_int, default=PATIENCE,
                        help="early stopping: epochs without a better validation loss before "
                             "stopping and restoring the best weights (default: off)")
    return parser


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

    data = dl_utils.load_mnist_data(args.data_dir, batch_size=args.batch_size, subset=args.subset,
                                    seed=args.seed, device=device, pixels=args.pixels,
                                    normalization=None if args.normalize else {"mean": 0.0, "std": 1.0})
    n_train, n_val = len(data.train_loader.dataset), len(data.val_loader.dataset)
    print(f"Data: {n_train:,} training, {n_val:,} validation, {len(data.test_loader.dataset):,} test images; "
          f"{len(data.train_loader)} batches of up to {args.batch_size} per epoch")
    if args.normalize:
        print(f"Normalisation from the training images: mean {data.mean:.4f}, std {data.std:.4f}")
    else:
        print("No normalisation: the network sees raw pixel values in [0, 1]")

    # -----------------------------------------------------------------------
    # 4. Model, loss, optimizer
    # -----------------------------------------------------------------------
    model_config = {"hidden": args.hidden, "dropout": args.dropout, "batch_norm": args.batch_norm}
    model = SimpleNN(**model_config).to(device)
    parameters = dl_utils.count_parameters(model)
    print(model)
    # With hidden=128: (784*128 + 128) + (128*10 + 10) = 100,480 + 1,290 = 101,770.
    print(f"Parameters: {parameters:,}")

    # CrossEntropyLoss takes the raw logits: it applies log-softmax itself,
    # in a numerically safe way (see "Loss Functions").
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr=args.lr, momentum=args.momentum)

    # -----------------------------------------------------------------------
    # 5. Train: train_one_epoch (section 2) once per epoch
    # -----------------------------------------------------------------------
    # dl_utils.train_model calls our loop, then scores the model on the
    # validation images it never trains on, and keeps the history. What to
    # notice: train accuracy keeps rising; validation accuracy levels off.
    # The gap between them is overfitting starting.
    print(f"\nTraining for {args.epochs} epochs ({args.optimizer}, lr {args.lr:g})")
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

    # -----------------------------------------------------------------------
    # 7. Save: weights + how to rebuild them + results
    # -----------------------------------------------------------------------
    results = dl_utils.summarize_run(script="03_train_mnist", hyperparameters=config, history=history,
                                     test_metrics=test, parameters=parameters, device=device)
    checkpoint_path = dl_utils.save_checkpoint(
        args.out_dir / MODEL_FILE, model=model, arch="SimpleNN", model_config=model_config,
        hyperparameters=config,
        metrics={k: results[k] for k in ("test_accuracy", "best_val_accuracy", "train_seconds")},
        normalization=data.normalization)
    plot_path = dl_utils.plot_training_history(
        history, args.out_dir / "training_history.png", show=args.show,
        title=f"SimpleNN on MNIST ({dl_utils.changed_settings(parser, args)}): "
              f"test accuracy {100 * test['accuracy']:.2f}%")
    results["checkpoint_kb"] = round(checkpoint_path.stat().st_size / 1024)
    dl_utils.save_results(args.out_dir, "03_train_mnist", results)
    dl_utils.log_experiment(args.out_dir, results)
    print(f"Saved {checkpoint_path.name} ({checkpoint_path.stat().st_size / 1024:.0f} KB), "
          f"{plot_path.name} and 03_train_mnist.json in {args.out_dir}")
    print("Next: python 04_load_model.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
