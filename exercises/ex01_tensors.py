"""Exercises for 01_hello_pytorch.py: tensors, shapes, broadcasting, autograd, softmax.

Each function below is one exercise. Read its docstring, replace the line
`raise NotImplementedError` with your code, and check your work:

    python exercises/check.py 01        # this lesson's exercises
    python exercises/check.py --hint    # a hint for the first one not done yet (--hint 2: a closer one)
    python exercises/check.py           # every lesson, in course order, then the success checklist

The comment above each function names the lesson section it practises and its
heading in ML_CONCEPTS_EXPLAINED.md. Try first without looking; the reference
solutions are in exercises/solutions/, under the same file name.
"""

import torch


# 01_hello_pytorch.py section 3 (reshaping) · "Tensors" in ML_CONCEPTS_EXPLAINED.md
def flatten_batch(images):
    """Flatten a batch of images into one row of pixels per image.

    images: a float tensor of shape (B, 1, 28, 28), a batch as 03's loader gives it.
    Return a tensor of shape (B, 784): row i holds image i's 28 * 28 pixels in
    order, row by row, exactly what x.flatten(start_dim=1) hands to 03's first Linear layer.
    It must work for any B, including B = 1.
    """
    raise NotImplementedError  # replace this line with your code


# 01_hello_pytorch.py section 4 (broadcasting) · "Tensors" in ML_CONCEPTS_EXPLAINED.md
def center_columns(data):
    """Subtract from every column its own mean, so each column averages to 0.

    data: a float tensor of shape (N, F): N rows (examples), F columns (features).
    Return a tensor of the same shape (N, F) where column j is data[:, j] minus the
    mean of data[:, j]. Use broadcasting: a (N, F) tensor minus a (F,) tensor.
    """
    raise NotImplementedError  # replace this line with your code


# 01_hello_pytorch.py section 2 (matrix multiplication) · "Forward & Backward Pass" in ML_CONCEPTS_EXPLAINED.md
def linear_forward(x, weight, bias):
    """Compute what nn.Linear computes, by hand: x @ W.T + b.

    x: (B, in_features), a batch of B rows.
    weight: (out_features, in_features), stored the way nn.Linear stores it.
    bias: (out_features,).
    Return the (B, out_features) outputs: row i is weight @ x[i] + bias.
    """
    raise NotImplementedError  # replace this line with your code


# 01_hello_pytorch.py section 6 (autograd) · "Gradients" in ML_CONCEPTS_EXPLAINED.md
def derivative(fn, x):
    """The derivative of fn at the number x, computed by autograd.

    fn: a function from a tensor to a tensor, e.g. lambda t: t ** 2 + 3 * t.
    x: a Python float.
    Return d fn / dx at x as a Python float (for t ** 2 + 3 * t at x = 2: 2x + 3 = 7).
    Let autograd do the maths: a tensor with requires_grad=True, then backward().
    """
    raise NotImplementedError  # replace this line with your code


# 01_hello_pytorch.py section 8 (softmax) · "Activation Functions" in ML_CONCEPTS_EXPLAINED.md
def softmax(logits, temperature=1.0):
    """Softmax by hand over the last dimension: scores -> probabilities.

    logits: a float tensor of any shape (..., C), e.g. (C,) for one example or
    (B, C) for a batch: one row of C scores per example.
    temperature: a positive number T; the result is softmax(logits / T).
    Return a tensor of the same shape, each row positive and summing to 1 along the
    last dimension. It must not overflow: softmax of [1000., 0.] is [1., 0.], not
    nan. Do not change the tensor you are given. (No torch.softmax: write it.)
    """
    raise NotImplementedError  # replace this line with your code


if __name__ == "__main__":
    print("Check these exercises with: python exercises/check.py 01")
