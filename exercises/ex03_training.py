"""Exercises for 03_train_mnist.py: parameters, the model, the loss, the five-step loop, backprop.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 03        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import torch
from torch import nn


# 03_train_mnist.py section 1 (parameters) · "Model Capacity" in ML_CONCEPTS_EXPLAINED.md
def count_linear_parameters(sizes):
    """The number of parameters of a stack of Linear layers, by formula.

    sizes: the layer widths from input to output, e.g. [784, 128, 10] for 03's
    SimpleNN (Linear(784, 128) then Linear(128, 10)).
    Return the total number of weights and biases as an int (101,770 for
    [784, 128, 10]). Work it out from the sizes; build no layers.
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 1 (the model) · "Activation Functions" in ML_CONCEPTS_EXPLAINED.md
def build_simple_nn(hidden):
    """Build 03's SimpleNN yourself: 784 -> hidden -> ReLU -> 10.

    hidden: the number of hidden neurons, e.g. 128.
    Return an nn.Module that takes images of shape (B, 1, 28, 28) and returns
    logits of shape (B, 10): flatten, Linear(784, hidden), ReLU, Linear(hidden, 10).
    It returns raw scores (logits), not probabilities: nn.CrossEntropyLoss applies
    the softmax itself. With hidden = 128 it has 101,770 parameters.
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 2 (the correct count) · "Loss Functions" in ML_CONCEPTS_EXPLAINED.md
def accuracy(logits, labels):
    """The fraction of examples whose highest logit is the true class.

    logits: (B, C) float scores, one row per example; labels: (B,) int64 classes.
    Return a Python float between 0 and 1 (0.9767 means 97.67%).
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 2 (the loss) · "Loss Functions" in ML_CONCEPTS_EXPLAINED.md
def cross_entropy(logits, labels):
    """Cross-entropy by hand: what nn.CrossEntropyLoss computes.

    logits: (B, C) float scores; labels: (B,) int64 classes.
    Return a 0-dimensional tensor: the mean over the B examples of
    -log(softmax(logits)[i, labels[i]]). It must stay finite for huge logits
    (e.g. 1000): work with log-softmax, never with log(softmax). (No
    nn.CrossEntropyLoss or F.cross_entropy: write it.)
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 2 (the five-step loop) · "Forward & Backward Pass" in ML_CONCEPTS_EXPLAINED.md
def train_one_epoch(model, loader, loss_fn, optimizer):
    """One epoch of training: the five steps, once per batch.

    model: an nn.Module; loader: yields (images, labels) batches, already on the
    model's device (the last batch may be smaller); loss_fn: e.g.
    nn.CrossEntropyLoss() (it returns the MEAN loss of a batch); optimizer: e.g.
    torch.optim.SGD(model.parameters(), lr=0.1).
    Put the model in training mode, then for every batch: zero the gradients,
    forward, loss, backward, step.
    Return the mean loss per image over the whole epoch, as a Python float: each
    batch's loss weighted by its number of images (not the last batch's loss, not
    the mean of the batch means).
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 2 (evaluate) · "Train, Validation & Test Sets" in ML_CONCEPTS_EXPLAINED.md
def evaluate(model, loader):
    """The accuracy of model on every example of loader, measured properly.

    model: an nn.Module returning (B, C) logits; loader: yields (images, labels).
    Put the model in evaluation mode (dropout off) and compute without recording
    gradients (torch.no_grad()). Return correct / total as a Python float, counted
    over all images (the last batch may be smaller: do not average batch accuracies).
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 2 (early stopping, --patience) · "Regularization" in ML_CONCEPTS_EXPLAINED.md
def should_stop(val_losses, patience):
    """Early stopping's rule: has the validation loss stopped improving?

    val_losses: the validation loss after each epoch so far, a list of floats.
    patience: an int >= 1.
    Return True when the lowest loss so far was reached `patience` or more epochs
    before the last one (an equal loss is no improvement), else False. Compare with
    the BEST epoch, not the previous one. An empty list: False.
    """
    raise NotImplementedError  # replace this line with your code


# 03_train_mnist.py section 1 (SimpleNN) · "Backpropagation" in ML_CONCEPTS_EXPLAINED.md
def backprop_by_hand(x, labels, W1, b1, W2, b2):
    """Backpropagation by hand through SimpleNN, with no autograd at all.

    The network: h = relu(x @ W1.T + b1), logits = h @ W2.T + b2, and the loss is
    the mean cross-entropy of logits against labels (nn.CrossEntropyLoss).
    x: (B, D) flattened images; labels: (B,) int64; W1: (H, D); b1: (H,);
    W2: (C, H); b2: (C,).
    Return a dict {"W1": ..., "b1": ..., "W2": ..., "b2": ...} with d loss / d
    each, every one the same shape as the tensor it belongs to. Use tensor
    operations only: no backward(), no torch.autograd (the checker runs your
    function with autograd switched off and compares with autograd's answer).
    """
    raise NotImplementedError  # replace this line with your code


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 03")
