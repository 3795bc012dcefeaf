"""Exercises 08: fix it and prove it. Debugging, reading training curves, saturation.

Each fix_* function is a short piece of the course's code that runs WITHOUT an
error and still does the wrong thing: one silent bug, of the kind learners
really make. Its docstring says what the code is for and what you would see.
Find the bug, fix it in place, and check your fix:

    python exercises/check.py 08        # these exercises
    python exercises/check.py 08 --hint  # a nudge for the first one not done yet
    python exercises/check.py 08 --hint 2   # a closer pointer

The checker runs your function on small data and compares what it DOES with
the course's code: a fix that only hides the symptom (a smaller learning rate,
a NaN replaced by 0, a rescaled output) does not pass. Then two exercises that
ask you to write code: `diagnose` (read a training history) and `saturation`
(why ReLU and not tanh). The comment above each function names the lesson
section it practises and its heading in ML_CONCEPTS_EXPLAINED.md. The fixed
code is in exercises/solutions/, under the same file name.
"""

import math

import torch
from torch import nn


# 03_train_mnist.py section 2 (the five-step loop) · "Forward & Backward Pass" in ML_CONCEPTS_EXPLAINED.md
def fix_train_epoch(model, loader, loss_fn, optimizer):
    """One epoch of training, 03's train_one_epoch; returns the mean loss per image.

    What you see: the loss falls for the first few batches, then climbs and
    jumps about; after a few epochs it is no better than after the first, or
    worse, and the validation accuracy is far below 03's.
    """
    model.train()
    total_loss, seen = 0.0, 0
    for images, labels in loader:
        logits = model(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
    return total_loss / seen


# 04_load_model.py section 5 (same model, same accuracy) · "Regularization" in ML_CONCEPTS_EXPLAINED.md
def fix_evaluate(model, loader):
    """The accuracy of a trained model (03's SimpleNN, say) on every image of loader.

    What you see: evaluate the same model twice on the same images and you get
    two different accuracies, both a little lower than you expected.
    """
    correct, seen = 0, 0
    with torch.no_grad():
        for images, labels in loader:
            predictions = model(images).argmax(dim=1)
            correct += (predictions == labels).sum().item()
            seen += len(labels)
    return correct / seen


# 03_train_mnist.py section 2 (the loss) · "Loss Functions" in ML_CONCEPTS_EXPLAINED.md
def fix_train_step(model, images, labels, optimizer):
    """One training step on one batch; returns the batch's loss as a float.

    What you see: the loss falls slowly, then stalls far above 0 however long
    you train (with 10 classes, near 1.5), and accuracy creeps up far more
    slowly than in 03.
    """
    loss_fn = nn.CrossEntropyLoss()
    optimizer.zero_grad()
    logits = model(images)  # (B, C) raw scores
    probabilities = torch.softmax(logits, dim=1)  # (B, C), each row sums to 1
    loss = loss_fn(probabilities, labels)
    loss.backward()
    optimizer.step()
    return loss.item()


# 02_load_mnist.py section 5 (pixel statistics) · "Train, Validation & Test Sets" in ML_CONCEPTS_EXPLAINED.md
def fix_normalize(train_images, test_images):
    """Turn uint8 images (N, 28, 28) into the network's input, (N, 1, 28, 28) float32.

    Each pixel becomes (pixel / 255 - mean) / std. Returns (train, test).
    What you see: normalise the same training images next to another test set
    (say a brighter one) and the training tensor changes too.
    """
    pixels = torch.cat([train_images, test_images]).float() / 255  # every image we have
    mean, std = pixels.mean(), pixels.std()
    train = (train_images.float() / 255 - mean) / std
    test = (test_images.float() / 255 - mean) / std
    return train.unsqueeze(1), test.unsqueeze(1)


# 02_load_mnist.py section 6 (shuffled batches) · "Epochs, Batches & Iterations" in ML_CONCEPTS_EXPLAINED.md
def fix_shuffle(images, labels, generator):
    """Shuffle a dataset into a random order that the generator's seed repeats.

    images: (N, 1, 28, 28); labels: (N,). Returns (images, labels), shuffled.
    What you see: training runs without an error, but the validation accuracy
    stays near 10% (chance) epoch after epoch, and the loss hardly moves from
    2.3.
    """
    images = images[torch.randperm(len(images), generator=generator)]
    labels = labels[torch.randperm(len(labels), generator=generator)]
    return images, labels


# 04_load_model.py section 8 (your own digit) · "Normalization" in ML_CONCEPTS_EXPLAINED.md
def fix_prepare_digit(photo, mean, std):
    """Prepare a photo of your own handwritten digit for 03's model.

    photo: (28, 28) uint8, already cropped and resized: a dark digit on light
    paper, as a phone photo gives it. mean, std: the training statistics
    (0.1307 and 0.3081 for MNIST, measured on pixels in 0..1).
    Returns a (1, 1, 28, 28) float32 tensor, ready for the model.
    What you see: the model gets almost every digit you draw wrong, and gives
    the same few answers whatever you draw.
    """
    pixels = photo.float() / 255  # 0 (black) .. 1 (white)
    normalised = (pixels - mean) / std
    return normalised.reshape(1, 1, 28, 28)


# 06_cnn_mnist.py section 3 (shapes) · "Convolutions & Pooling" in ML_CONCEPTS_EXPLAINED.md
def fix_channels_first(photos):
    """Colour photos as image libraries store them, (N, H, W, 3) uint8, to the
    layout nn.Conv2d expects: (N, 3, H, W) float32 in 0..1.

    What you see: the shapes are right and nothing fails, but show one channel of
    a converted photo (plt.imshow(x[0, 0])) and it is stripes, not the picture.
    """
    pixels = photos.float() / 255
    n, height, width, channels = photos.shape
    return pixels.view(n, channels, height, width)


# 03_train_mnist.py section 2 (the epoch loop) · "Epochs, Batches & Iterations" in ML_CONCEPTS_EXPLAINED.md
def fix_fit(model, loader, loss_fn, optimizer, epochs):
    """Train for `epochs` epochs; returns each epoch's mean training loss, a
    list of floats for the plot and the JSON record.

    What you see: the memory in use grows with every batch until the machine
    runs out, and print(history) shows tensor(0.93, grad_fn=<DivBackward0>).
    """
    history = []
    for epoch in range(epochs):
        model.train()
        total_loss, seen = 0.0, 0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            total_loss += loss * len(labels)
            seen += len(labels)
        history.append(total_loss / seen)
    return history


# 02_load_mnist.py section 6 (normalisation) · "Normalization" in ML_CONCEPTS_EXPLAINED.md
def fix_prepare_batch(images, mean, std):
    """MNIST's raw images (B, 28, 28) uint8 to the network's input (B, 1, 28, 28)
    float32, normalised with the training mean and std (0.1307 and 0.3081,
    measured on pixels in 0..1).

    What you see: with plain SGD the first loss is far above 2.3, the next ones
    run into the millions, and then it sticks at 2.30 (chance) for good, or
    turns into nan.
    """
    pixels = images.float()
    return ((pixels - mean) / std).unsqueeze(1)


# 03_train_mnist.py section 2 (the epoch loop) · "Overfitting & Underfitting" in ML_CONCEPTS_EXPLAINED.md
def diagnose(history):
    """Read a training history the way LEARNING_GUIDE.md's "Reading training curves" does.

    history: 03's format, a dict of lists with one number per epoch:
    "train_loss", "val_loss", "train_accuracy", "val_accuracy".
    Return one of "lr too high", "underfitting", "overfitting", "good fit",
    deciding in this order:
      1. "lr too high": training itself fails. The training loss is not finite
         (nan or inf) at some epoch, or it ends more than 0.05 above its lowest
         value: it went back UP.
      2. "underfitting": the model does not even fit the images it trains on:
         the last training accuracy is below 0.9.
      3. "overfitting": the last validation loss is more than 20% above its
         lowest (it turned upward while training went on), or the last training
         accuracy beats the last validation accuracy by more than 0.05.
      4. Otherwise "good fit".
    Two made-up examples (the checker uses real runs from docs/results instead):
      {"train_loss": [0.9, 0.4, 0.2, 0.1], "val_loss": [0.5, 0.3, 0.35, 0.45],
       "train_accuracy": [0.8, 0.9, 0.95, 0.98], "val_accuracy": [0.85, 0.9, 0.9, 0.9]}  -> "overfitting"
      {"train_loss": [2.3, 2.2, 2.2, 2.1], "val_loss": [2.3, 2.2, 2.2, 2.1],
       "train_accuracy": [0.1, 0.2, 0.25, 0.3], "val_accuracy": [0.1, 0.2, 0.25, 0.3]}  -> "underfitting"
    """
    raise NotImplementedError  # replace this line with your code


# 05_experiment_architectures.py section 1 (TanhNN) · "Vanishing & Exploding Gradients" in ML_CONCEPTS_EXPLAINED.md
def saturation(activation, depth, inputs):
    """How much gradient reaches the input through `depth` layers of an activation.

    activation: a function of a tensor, e.g. torch.tanh or torch.relu.
    depth: how many times it is applied: y = activation(activation(...(x))).
    inputs: a list of numbers x, e.g. [0.5, 1.0, 2.0, 4.0].
    Return a list of floats, one per x: dy/dx at that x, measured with autograd
    (float64 for precision). Then look at your numbers for torch.tanh and
    torch.relu, at depth 1 and depth 4: which one lets a gradient through a
    large input?
    """
    raise NotImplementedError  # replace this line with your code


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 08")
