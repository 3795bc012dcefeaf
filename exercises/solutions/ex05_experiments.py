"""Exercises for 05_experiment_architectures.py: architectures, linear collapse, honest comparisons.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 05        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import math
import statistics

from torch import nn

# Reference solutions: the same exercises, solved. Try yours first.


# 05_experiment_architectures.py section 1 (ThreeLayerNN) · "Model Capacity" in ML_CONCEPTS_EXPLAINED.md
def three_layer_nn():
    """Build 05's ThreeLayerNN: 784 -> 256 -> ReLU -> 128 -> ReLU -> 10.

    Return an nn.Module taking images (B, 1, 28, 28) and returning logits (B, 10),
    with exactly 235,146 parameters. Work the count out first:
    (784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10).
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(),  # 200,960
        nn.Linear(256, 128), nn.ReLU(),  # 32,896
        nn.Linear(128, 10),  # 1,290
    )


# 05_experiment_architectures.py section 1 (NoActivationNN) · "Activation Functions" in ML_CONCEPTS_EXPLAINED.md
def collapse_linear(W1, b1, W2, b2):
    """Two Linear layers with nothing in between are one Linear layer: find it.

    The network: y = (x @ W1.T + b1) @ W2.T + b2, with W1: (H, D), b1: (H,),
    W2: (C, H), b2: (C,).
    Return (W, b) with W: (C, D) and b: (C,) such that x @ W.T + b gives the same
    y for every x (05's NoActivationNN.collapsed() does this).
    """
    # W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)
    return W2 @ W1, W2 @ b1 + b2


# 05_experiment_architectures.py --compare-runs · "Train, Validation & Test Sets" in ML_CONCEPTS_EXPLAINED.md
def best_run(runs):
    """Pick the best of several training runs, the honest way.

    runs: a list of dicts, each with at least "val_accuracy" and "test_accuracy"
    (fractions), as in experiments.csv.
    Return the dict of the run with the highest VALIDATION accuracy. The test
    accuracy is for reporting the chosen run, never for choosing it.
    """
    return max(runs, key=lambda run: run["val_accuracy"])


# 05_experiment_architectures.py section 3 (is a difference real?) · "Generalization" in ML_CONCEPTS_EXPLAINED.md
def compare_with_noise(a, b):
    """05's rule of thumb: is the gap between two networks more than the seed noise?

    a, b: lists of validation accuracies (fractions), one per seed, at least 2 each.
    gap = mean(a) - mean(b). The noise of that gap is sqrt(std_a**2 / n_a +
    std_b**2 / n_b), where std is the sample standard deviation over the seeds
    (statistics.stdev: it divides by n - 1) and n the number of seeds.
    Return "a" if gap > 2 * noise, "b" if gap < -2 * noise, else "noise".
    """
    gap = statistics.mean(a) - statistics.mean(b)
    # std / sqrt(n) is how much a MEAN of n seeds wobbles (its standard error).
    noise = math.sqrt(statistics.stdev(a) ** 2 / len(a) + statistics.stdev(b) ** 2 / len(b))
    if gap > 2 * noise:
        return "a"
    if gap < -2 * noise:
        return "b"
    return "noise"


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 05")
