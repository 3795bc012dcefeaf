"""Exercises for 02_load_mnist.py: class counts, pixel statistics, normalisation, splits, batches.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 02        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import torch


# 02_load_mnist.py section 5 (class balance) · "Train, Validation & Test Sets" in ML_CONCEPTS_EXPLAINED.md
def class_counts(labels, num_classes=10):
    """How many examples of each class there are.

    labels: an int64 tensor of shape (N,) with values 0 .. num_classes - 1.
    Return an int64 tensor of shape (num_classes,): entry d is the number of labels
    equal to d. A class that never occurs still gets its entry, 0.
    """
    raise NotImplementedError  # replace this line with your code


# 02_load_mnist.py section 5 (pixel statistics) · "Normalization" in ML_CONCEPTS_EXPLAINED.md
def pixel_stats(images):
    """Mean and standard deviation of all the pixels, in 0..1 units.

    images: a uint8 tensor of shape (N, 28, 28), raw MNIST pixels 0 .. 255.
    Return (mean, std) as two Python floats, computed over every pixel of every
    image after scaling to 0..1 (MNIST's training split gives about 0.1306 and 0.3081).
    """
    raise NotImplementedError  # replace this line with your code


# 02_load_mnist.py section 6 (normalisation) · "Normalization" in ML_CONCEPTS_EXPLAINED.md
def normalize_images(images, mean, std):
    """Turn raw images into what the network is fed: (pixel / 255 - mean) / std.

    images: a uint8 tensor (N, 28, 28), pixels 0 .. 255.
    mean, std: floats in 0..1 units, the statistics to use (e.g. from pixel_stats on
    the training images: do not recompute them from these images).
    Return a float32 tensor of shape (N, 1, 28, 28): the extra dimension is the one
    colour channel (grey) that the models' layers expect.
    """
    raise NotImplementedError  # replace this line with your code


# 02_load_mnist.py sections 4-6 (splits, statistics) · "Train, Validation & Test Sets" in ML_CONCEPTS_EXPLAINED.md
def normalize_splits(train_images, val_images, test_images):
    """Normalise the three splits the honest way.

    Each argument is a uint8 tensor (N, 28, 28) of raw pixels (the N differ).
    Return three float32 tensors (N, 1, 28, 28), each (pixel / 255 - mean) / std,
    where mean and std are computed on the TRAINING images only and used for all
    three splits (validation and test data must not influence anything you use).
    """
    raise NotImplementedError  # replace this line with your code


# 02_load_mnist.py section 6 (batches) · "Epochs, Batches & Iterations" in ML_CONCEPTS_EXPLAINED.md
def shuffled_batches(images, labels, batch_size, generator=None):
    """Cut one epoch of shuffled batches, as dl_utils.InMemoryLoader does.

    images: a tensor (N, ...); labels: a tensor (N,); labels[i] belongs to images[i].
    batch_size: images per batch. generator: a torch.Generator for the shuffling
    (pass it to torch.randperm), or None.
    Return a list of (batch_images, batch_labels) pairs: every example exactly once,
    in a random order, each label still next to its own image; all batches hold
    batch_size examples except the last, which holds the rest (55,000 images in
    batches of 64, 03's size, make 860 batches, the last one of 24).
    """
    raise NotImplementedError  # replace this line with your code


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 02")
