"""Exercises for 06_cnn_mnist.py: conv and pool shapes, parameters, confusion matrix, FGSM.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 06        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import torch
from torch import nn

# Reference solutions: the same exercises, solved. Try yours first.


# 06_cnn_mnist.py section 3 (shapes layer by layer) · "Convolutions & Pooling" in ML_CONCEPTS_EXPLAINED.md
def conv_output_size(size, kernel, padding=0, stride=1):
    """The width (or height) of a convolution's or a pooling's output, by formula.

    size: the input's width in pixels; kernel: the filter's width; padding: pixels
    of zeros added on EACH side; stride: how far the filter moves each step.
    Return the output width as an int. Conv2d(1, 32, kernel_size=3, padding=1)
    keeps 28 -> 28; MaxPool2d(2) is kernel 2, stride 2: 28 -> 14.
    """
    # The filter fits at positions 0, stride, 2 * stride, ... while it stays inside.
    return (size + 2 * padding - kernel) // stride + 1


# 06_cnn_mnist.py section 1 (the model) · "Convolutions & Pooling" in ML_CONCEPTS_EXPLAINED.md
def conv_parameters(in_channels, out_channels, kernel):
    """The number of parameters of nn.Conv2d(in_channels, out_channels, kernel).

    Every one of the out_channels filters has kernel x kernel weights for EACH input
    channel, plus one bias. Return an int: 320 for Conv2d(1, 32, 3) and 18,496 for
    Conv2d(32, 64, 3), 06's two conv layers.
    """
    return out_channels * (in_channels * kernel * kernel) + out_channels


# 06_cnn_mnist.py section 1 (max pooling) · "Convolutions & Pooling" in ML_CONCEPTS_EXPLAINED.md
def max_pool_2x2(x):
    """MaxPool2d(2) by hand: keep the largest value of every 2 x 2 block.

    x: a float tensor (B, C, H, W) with H and W even.
    Return a tensor (B, C, H // 2, W // 2) whose [b, c, i, j] is the maximum of
    x[b, c, 2i:2i+2, 2j:2j+2]. (No nn.MaxPool2d or F.max_pool2d: write it.)
    """
    B, C, H, W = x.shape
    # Split each axis into (blocks, 2): (B, C, H/2, 2, W/2, 2), then take the max
    # over the two "2" axes, the rows and the columns inside each block.
    return x.reshape(B, C, H // 2, 2, W // 2, 2).amax(dim=(3, 5))


# 06_cnn_mnist.py section 6 (confusion matrix) · "Generalization" in ML_CONCEPTS_EXPLAINED.md
def confusion_matrix(predictions, labels, num_classes=10):
    """Count which class is taken for which.

    predictions, labels: int64 tensors (N,) of classes 0 .. num_classes - 1.
    Return an int64 tensor (num_classes, num_classes) whose [t, p] is the number of
    examples with true label t that were predicted as p: row = truth, column =
    prediction, so the diagonal holds the correct answers.
    """
    # labels * C + predictions gives each (true, predicted) pair its own number 0 .. C*C - 1.
    cells = torch.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return cells.reshape(num_classes, num_classes)


# 06_cnn_mnist.py section 8 (FGSM) · "Gradients" in ML_CONCEPTS_EXPLAINED.md
def fgsm(model, images, labels, epsilon, mean, std):
    """The Fast Gradient Sign Method: nudge every pixel to raise the loss.

    model: returns (B, C) logits; images: normalised images (B, 1, 28, 28), i.e.
    (pixel - mean) / std; labels: (B,) int64; epsilon: the step in PIXEL units
    (0..1), e.g. 0.1; mean, std: the normalisation the images went through.
    Compute the gradient of the mean cross-entropy loss with respect to the IMAGES,
    then x_adv = images + (epsilon / std) * sign(gradient), clamped so that every
    pixel stays between black and white: (0 - mean) / std and (1 - mean) / std.
    Return x_adv (same shape), detached from the graph. Leave images unchanged.
    """
    model.eval()
    x = images.clone().requires_grad_(True)  # a copy: the caller's images stay as they were
    loss = nn.functional.cross_entropy(model(x), labels)
    (gradient,) = torch.autograd.grad(loss, x)  # d loss / d pixel: the weights get no gradient
    adversarial = x.detach() + (epsilon / std) * gradient.sign()  # uphill: the loss grows
    return adversarial.clamp((0.0 - mean) / std, (1.0 - mean) / std)


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 06")
