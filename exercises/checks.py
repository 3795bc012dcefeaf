"""The checks behind `python exercises/check.py`: one function per exercise.

Each check receives the learner's function (looked up by name in the learner's
file) and tests what it DOES, on small synthetic tensors: values, shapes,
gradients, weights after a few training steps, compared with a reference
computed here. Nothing reads the learner's source code, so any correct
solution passes, however it is written.

A check returns None when the exercise is solved, and raises `Fail("...")`
with a message in plain words otherwise. Where a typical mistake gives a
recognisable wrong answer (gradients not zeroed, softmax overflowing, the
wrong dimension, statistics from the test set, ...), the check computes that
wrong answer too and names the mistake when the learner's result matches it.

This module imports torch; only the checker's worker process imports it
(exercises/check.py runs the checks there, with a time limit per exercise).
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import dl_utils  # noqa: E402  (after the path is set)


class Fail(Exception):
    """The exercise is not solved; the message says why, in plain words."""


@dataclass
class Exercise:
    lesson: str  # "01" .. "06"
    name: str  # the function's name in exercises/exNN_topic.py
    check: object  # check(fn) -> None, raises Fail
    hint: str


EXERCISES: list[Exercise] = []


def exercise(lesson: str, hint: str):
    """Register `check_<name>` as the check of exercise <name> in lesson `lesson`."""
    def register(check):
        EXERCISES.append(Exercise(lesson, check.__name__[len("check_"):], check, hint))
        return check
    return register


# ---------------------------------------------------------------------------
# Helpers: how results are described to the learner
# ---------------------------------------------------------------------------
def numbers(t, limit: int = 6) -> str:
    """[0.659, 0.2424, ...]: at most `limit` values of a tensor; a small matrix keeps its rows."""
    def text(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    t = t.detach()
    if t.dim() == 2 and t.numel() <= 12:
        return "[" + ", ".join("[" + ", ".join(text(v) for v in row) + "]" for row in t.tolist()) + "]"
    flat = t.flatten().tolist()
    return "[" + ", ".join(text(v) for v in flat[:limit]) + (", ..." if len(flat) > limit else "") + "]"


def describe(value) -> str:
    """What the learner's function returned, in words."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({str(value.dtype).replace('torch.', '')}) {numbers(value)}"
    if value is None:
        return "None (did you forget `return`?)"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 120 else text[:117] + '...'}"


def tensor_result(value, call: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Fail(f"{call} should return a tensor; yours returned {describe(value)}.")
    return value


def float_result(value, call: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Fail(f"{call} should return a number (a Python float); yours returned {describe(value)}.")
    return float(value)


def pair_result(value, call: str, count: int = 2) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != count:
        raise Fail(f"{call} should return {count} things, as a tuple; yours returned {describe(value)}.")
    return tuple(value)


def close(a, b, atol: float = 1e-5) -> bool:
    """Same shape and values (NaN never matches)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=1e-4))


def expect_shape(result: torch.Tensor, shape: tuple, call: str, why: str = "") -> None:
    if tuple(result.shape) != tuple(shape):
        raise Fail(f"{call} should have shape {tuple(shape)}{why}; yours has shape {tuple(result.shape)}.")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Recorder(nn.Module):
    """Passes its input through, noting the model's mode and whether autograd records."""

    def __init__(self):
        super().__init__()
        self.modes, self.grad_enabled = [], []

    def forward(self, x):
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        return x


def tiny_loader(n: int = 17, batch_size: int = 5, *, features: int = 4, classes: int = 3, seed: int = 0):
    """n synthetic examples (n, 1, 2, 2) in unshuffled batches; the last one is partial (17 = 3 x 5 + 2)."""
    g = generator(seed)
    images = torch.randn(n, 1, 2, features // 2, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return dl_utils.InMemoryLoader(images, labels, batch_size=batch_size, shuffle=False)


def is_affine(model, shape) -> bool:
    """True when model(a) + model(b) - model(0) == model(a + b): no non-linearity anywhere."""
    g = generator(1)
    a, b = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    with torch.no_grad():
        return bool(torch.allclose(model(a) + model(b) - model(torch.zeros(shape)), model(a + b), atol=1e-4))


def check_network(model, *, call: str, parameters: int, formula: str, hidden_note: str = "") -> None:
    """Shared by build_simple_nn and three_layer_nn: a (B, 1, 28, 28) -> (B, 10) non-linear net of logits."""
    if not isinstance(model, nn.Module):
        raise Fail(f"{call} should return an nn.Module (e.g. an nn.Sequential); yours returned {describe(model)}.")
    count = sum(p.numel() for p in model.parameters())
    if count != parameters:
        raise Fail(f"{call} has {count:,} parameters; it should have {parameters:,}: {formula}.{hidden_note}")
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(4, 1, 28, 28, generator=generator(2)))
    out = tensor_result(out, f"{call}(images)")
    expect_shape(out, (4, 10), f"Its output for 4 images (4, 1, 28, 28)", ": one row of 10 logits per image")
    if bool((out >= 0).all()) and torch.allclose(out.sum(dim=1), torch.ones(4), atol=1e-4):
        raise Fail("Every row of its output is positive and sums to 1: the network ends with a softmax. "
                   "Return raw logits instead; nn.CrossEntropyLoss applies (log-)softmax itself, and a second "
                   "softmax in front of it makes learning slow.")
    if is_affine(model, (3, 1, 28, 28)):
        raise Fail("The network is linear: model(a) + model(b) - model(0) equals model(a + b). Without an "
                   "activation such as nn.ReLU() between the Linear layers they collapse into ONE linear map "
                   "(05's NoActivationNN shows it), so the hidden layer adds parameters but no power.")


# ---------------------------------------------------------------------------
# 01 Hello, PyTorch
# ---------------------------------------------------------------------------
@exercise("01", "Keep the first dimension and let PyTorch work out the rest: images.reshape(images.shape[0], -1) "
                "(or .view, or .flatten(start_dim=1)). Print the shape to see it.")
def check_flatten_batch(fn):
    images = torch.arange(3 * 784, dtype=torch.float32).reshape(3, 1, 28, 28)
    out = tensor_result(fn(images.clone()), "flatten_batch(images)")
    if tuple(out.shape) == (3 * 784,):
        raise Fail("For images of shape (3, 1, 28, 28) the result should have shape (3, 784); yours has shape "
                   "(2352,): everything, the batch dimension included, became one long row. Keep the first "
                   "dimension: one row per image.")
    if tuple(out.shape) == (784, 3):
        raise Fail("For images of shape (3, 1, 28, 28) the result should have shape (3, 784); yours has (784, 3). "
                   "The batch dimension comes first: rows are images, columns are pixels.")
    expect_shape(out, (3, 784), "For images of shape (3, 1, 28, 28) the result")
    if not torch.equal(out, images.reshape(3, 784)):
        raise Fail("The shape (3, 784) is right but the numbers are in the wrong places: row i must hold image "
                   f"i's pixels row by row. Row 0 should start {numbers(images.reshape(3, 784)[0])}; yours starts "
                   f"{numbers(out[0])}.")
    one = tensor_result(fn(images[:1].clone()), "flatten_batch(one image)")
    if tuple(one.shape) != (1, 784):
        raise Fail(f"For a batch of ONE image (1, 1, 28, 28) the result should have shape (1, 784); yours has "
                   f"{tuple(one.shape)}. (squeeze() removes every dimension of size 1, the batch's too.)")


@exercise("01", "data.mean(dim=0) is one mean per column, shape (F,); subtracting it from the (N, F) data "
                "broadcasts it over every row.")
def check_center_columns(fn):
    data = torch.tensor([[1.0, 10.0, 100.0], [3.0, 30.0, 300.0], [5.0, 20.0, 200.0], [7.0, 40.0, 0.0]])
    expected = data - data.mean(dim=0)
    out = tensor_result(fn(data.clone()), "center_columns(data)")
    expect_shape(out, (4, 3), "For data of shape (4, 3) the result")
    if close(out, expected):
        return
    if close(out, data - data.mean(dim=1, keepdim=True)):
        raise Fail("You subtracted each ROW's mean (dim=1): the wrong dimension. A column's values run down "
                   "the rows, so its mean is taken over dim=0; each column of the result should average to 0. "
                   f"Expected first row {numbers(expected[0])}, yours {numbers(out[0])}.")
    if close(out, data - data.mean()):
        raise Fail("You subtracted one mean of ALL the numbers; each column needs its own mean "
                   "(data.mean(dim=0), shape (3,) here). "
                   f"Expected first row {numbers(expected[0])}, yours {numbers(out[0])}.")
    raise Fail(f"center_columns({data.tolist()}) should start with the row {numbers(expected[0])} "
               f"(column means {numbers(data.mean(dim=0))}); yours starts {numbers(out[0])}.")


@exercise("01", "nn.Linear stores weight as (out_features, in_features), so x (B, in) is multiplied by its "
                "transpose: x @ weight.T gives (B, out). Then add the bias.")
def check_linear_forward(fn):
    g = generator(0)
    x, weight, bias = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    expected = x @ weight.T + bias
    out = tensor_result(fn(x, weight, bias), "linear_forward(x, weight, bias)")
    expect_shape(out, (5, 3), "For x (5, 4), weight (3, 4), bias (3,) the result", ": B = 5 rows of 3 outputs")
    if close(out, expected):
        return
    if close(out, x @ weight.T):
        raise Fail("The bias is missing: add it after the matrix multiplication (x @ weight.T + bias).")
    raise Fail(f"For x (5, 4), weight (3, 4), bias (3,) row 0 should be {numbers(expected[0])} "
               f"(= weight @ x[0] + bias); yours is {numbers(out[0])}.")


@exercise("01", "t = torch.tensor(x, requires_grad=True); y = fn(t); y.backward(); then t.grad holds dy/dx. "
                "Call backward() once: gradients add up.")
def check_derivative(fn):
    cases = [("lambda t: t ** 2 + 3 * t", lambda t: t ** 2 + 3 * t, 2.0, 7.0, "2x + 3 = 7"),
             ("lambda t: t ** 2 + 3 * t", lambda t: t ** 2 + 3 * t, -1.5, 0.0, "2x + 3 = 0"),
             ("lambda t: t ** 3", lambda t: t ** 3, 2.0, 12.0, "3x^2 = 12"),
             ("torch.sin", torch.sin, 0.5, math.cos(0.5), f"cos(0.5) = {math.cos(0.5):.4f}"),
             ("torch.relu", torch.relu, -1.0, 0.0, "0: relu is flat for x < 0")]
    for text, f, x, expected, by_hand in cases:
        call = f"derivative({text}, {x})"
        got = float_result(fn(f, x), call)
        if abs(got - expected) < 1e-4:
            continue
        if expected != 0 and abs(got - 2 * expected) < 1e-4:
            raise Fail(f"{call} returned {got:.4g}, exactly twice the derivative ({by_hand}): backward() ran "
                       "twice, and each call ADDS to .grad (01 section 6 shows it). Training zeroes the gradients "
                       "before each backward() for the same reason.")
        value = float(f(torch.tensor(x)))
        if abs(got - value) < 1e-4:
            raise Fail(f"{call} returned {got:.4g}, which is fn({x}) itself, not its slope. Read the slope from "
                       "t.grad after backward().")
        raise Fail(f"{call} should be {expected:.4g} (by hand: {by_hand}); yours returned {got:.4g}.")


def _softmax_ref(z, temperature=1.0):
    return torch.softmax(z.double() / temperature, dim=-1).to(z.dtype)


@exercise("01", "exp(z) / exp(z).sum(dim=-1, keepdim=True), after subtracting each row's max "
                "(z.max(dim=-1, keepdim=True).values): the max cancels out and exp() can no longer overflow. "
                "Divide by the temperature first, into a new tensor.")
def check_softmax(fn):
    logits = torch.tensor([2.0, 1.0, 0.1])
    out = tensor_result(fn(logits.clone()), "softmax(torch.tensor([2.0, 1.0, 0.1]))")
    expected = _softmax_ref(logits)
    expect_shape(out, (3,), "softmax(torch.tensor([2.0, 1.0, 0.1]))")
    if not close(out, expected, 1e-4):
        raise Fail(f"softmax([2.0, 1.0, 0.1]) should be {numbers(expected)} (01 section 8); yours is {numbers(out)}.")

    batch = torch.randn(4, 5, generator=generator(0)) * 3
    call = "softmax(a batch of shape (4, 5))"
    out = tensor_result(fn(batch.clone()), call)
    expect_shape(out, (4, 5), call)
    if not close(out, _softmax_ref(batch), 1e-4):
        if close(out, torch.softmax(batch, dim=0), 1e-4):
            raise Fail("For a batch (4, 5) each ROW should sum to 1; in yours each COLUMN does: the sums run over "
                       "the wrong dimension (dim=0). Normalise over the last one: sum(dim=-1, keepdim=True).")
        if abs(float(out.sum()) - 1) < 1e-3:
            raise Fail("For a batch (4, 5) each of the 4 rows should sum to 1; in yours the whole batch sums to 1: "
                       "the sum ran over every number at once. Sum over the last dimension only: "
                       "sum(dim=-1, keepdim=True).")
        raise Fail(f"For a batch (4, 5) row 0 should be {numbers(_softmax_ref(batch)[0])} (each row on its own); "
                   f"yours is {numbers(out[0])}; your rows sum to {numbers(out.sum(dim=-1))}.")
    cube = torch.randn(2, 3, 4, generator=generator(1))
    out = tensor_result(fn(cube.clone()), "softmax(a tensor of shape (2, 3, 4))")
    if not close(out, _softmax_ref(cube), 1e-4):
        raise Fail("For a tensor (2, 3, 4) the softmax should run over the LAST dimension (size 4); yours gives "
                   f"{describe(out)}. Use dim=-1 rather than a fixed dimension number.")

    big = torch.tensor([[1000.0, 0.0], [0.0, -1000.0]])
    out = tensor_result(fn(big.clone()), "softmax(torch.tensor([[1000., 0.], [0., -1000.]]))")
    if not bool(torch.isfinite(out).all()):
        raise Fail(f"softmax([[1000., 0.], [0., -1000.]]) should be [[1, 0], [1, 0]]; yours is {numbers(out)}. "
                   "exp(1000) overflows float32 to inf, and inf / inf is nan. Subtract each row's largest logit "
                   "first: softmax(z - max) == softmax(z), and every exp() is then at most 1.")
    if not close(out, _softmax_ref(big), 1e-4):
        raise Fail(f"softmax([[1000., 0.], [0., -1000.]]) should be [[1, 0], [1, 0]]; yours is {numbers(out)}. "
                   "Subtract each row's own maximum (keepdim=True), not one maximum for the whole batch.")

    call = "softmax(torch.tensor([2.0, 1.0, 0.1]), temperature=2.0)"
    out = tensor_result(fn(logits.clone(), temperature=2.0), call)
    if not close(out, _softmax_ref(logits, 2.0), 1e-4):
        if close(out, _softmax_ref(logits * 2.0), 1e-4):
            raise Fail(f"{call} should be {numbers(_softmax_ref(logits, 2.0))} (flatter than T = 1); yours is "
                       f"{numbers(out)}, sharper: you multiplied the logits by the temperature. Divide: z / T.")
        if close(out, expected, 1e-4):
            raise Fail(f"{call} should be {numbers(_softmax_ref(logits, 2.0))}; yours is {numbers(out)}, the "
                       "same as with T = 1: the temperature is ignored. Divide the logits by it.")
        raise Fail(f"{call} should be {numbers(_softmax_ref(logits, 2.0))}; yours is {numbers(out)}.")

    given = torch.tensor([[3.0, 1.0, 0.0]])
    fn(given)
    if not torch.equal(given, torch.tensor([[3.0, 1.0, 0.0]])):
        raise Fail(f"Your softmax changed the tensor it was given: [[3., 1., 0.]] became {numbers(given)}. "
                   "An in-place operation (-=, /=, exp_) writes into the caller's logits; use z = logits / T "
                   "and z = z - ..., which make new tensors.")


# ---------------------------------------------------------------------------
# 02 Meet the data
# ---------------------------------------------------------------------------
@exercise("02", "torch.bincount(labels, minlength=num_classes): minlength keeps a 0 for classes that never occur.")
def check_class_counts(fn):
    labels = torch.tensor([3, 1, 3, 0, 7, 3, 1, 0])
    expected = torch.bincount(labels, minlength=10)
    out = tensor_result(fn(labels.clone()), "class_counts(torch.tensor([3, 1, 3, 0, 7, 3, 1, 0]))")
    if tuple(out.shape) == (8,):
        raise Fail(f"class_counts([3, 1, 3, 0, 7, 3, 1, 0]) should have 10 entries, one per digit "
                   f"{expected.tolist()}; yours has 8 {out.tolist()}: digits 8 and 9 never occur, and a "
                   "count that is 0 must still be there. (bincount needs minlength=num_classes.)")
    expect_shape(out, (10,), "class_counts([3, 1, 3, 0, 7, 3, 1, 0])", ": one count per digit 0-9")
    if out.is_floating_point():
        raise Fail(f"Counts are whole numbers: return an integer tensor (int64); yours is {out.dtype}.")
    if not torch.equal(out.long(), expected):
        raise Fail(f"class_counts([3, 1, 3, 0, 7, 3, 1, 0]) should be {expected.tolist()} (entry d counts the "
                   f"label d); yours is {out.tolist()}.")
    five = torch.tensor([4, 4, 0, 2])
    out = tensor_result(fn(five, num_classes=5), "class_counts(torch.tensor([4, 4, 0, 2]), num_classes=5)")
    if out.tolist() != [1, 0, 1, 0, 2]:
        raise Fail(f"class_counts([4, 4, 0, 2], num_classes=5) should be [1, 0, 1, 0, 2]; yours is "
                   f"{describe(out)}. Use num_classes, not a fixed 10.")


def _uint8_images(n, seed, low=0, high=256):
    images = torch.randint(low, high, (n, 28, 28), generator=generator(seed)).to(torch.uint8)
    images[:, :, :8] = 0  # a black margin, as in MNIST: the mean is low
    return images


@exercise("02", "images.float() / 255 first (uint8 cannot be averaged, and 0..255 is not 0..1), then "
                ".mean() and .std() over everything; .item() turns each into a Python float.")
def check_pixel_stats(fn):
    images = _uint8_images(6, 0)
    pixels = images.double() / 255
    mean, std = pixels.mean().item(), pixels.std().item()
    got = pair_result(fn(images.clone()), "pixel_stats(images)")
    got_mean, got_std = (float_result(v, "pixel_stats(images)'s mean and std") for v in got)
    if abs(got_mean - 255 * mean) < 1e-2 * 255:
        raise Fail(f"pixel_stats gave a mean of {got_mean:.4g}: that is in 0..255 units. Scale the pixels to 0..1 "
                   f"first (divide by 255): the mean should be {mean:.4f}.")
    if abs(got_mean - mean) > 1e-4 or abs(got_std - std) > 1e-4:
        raise Fail(f"For these 6 images the mean should be {mean:.4f} and the std {std:.4f} (over every pixel, in "
                   f"0..1 units); yours are {got_mean:.4f} and {got_std:.4f}.")


@exercise("02", "(images.float() / 255 - mean) / std gives (N, 28, 28); .unsqueeze(1) adds the channel: "
                "(N, 1, 28, 28). Use the mean and std you are given.")
def check_normalize_images(fn):
    images = _uint8_images(5, 1)
    mean, std = 0.2, 0.4  # deliberately not these images' own statistics
    expected = ((images.float() / 255 - mean) / std).unsqueeze(1)
    call = "normalize_images(images (5, 28, 28), mean=0.2, std=0.4)"
    out = tensor_result(fn(images.clone(), mean, std), call)
    if tuple(out.shape) == (5, 28, 28):
        raise Fail(f"{call} should have shape (5, 1, 28, 28); yours has (5, 28, 28): the colour channel is "
                   "missing. Layers such as nn.Conv2d expect (batch, channels, height, width): unsqueeze(1).")
    expect_shape(out, (5, 1, 28, 28), call)
    if out.dtype != torch.float32:
        raise Fail(f"{call} should be float32, what the network computes in; yours is {out.dtype}.")
    if close(out, expected, 1e-4):
        return
    own = images.float() / 255
    if close(out, ((own - own.mean()) / own.std()).unsqueeze(1), 1e-3):
        raise Fail("You recomputed the mean and std from these images. Use the mean and std you are given: "
                   "validation and test images (and your own digit in 04) must be normalised with the TRAINING "
                   "statistics, the ones the model was trained with.")
    if close(out, ((images.float() - mean) / std).unsqueeze(1), 1e-3):
        raise Fail("The pixels were not scaled to 0..1 first: mean and std are in 0..1 units, so divide by 255 "
                   "before subtracting the mean.")
    raise Fail(f"A black pixel (0) should become (0 - 0.2) / 0.4 = -0.5; yours became {out[0, 0, 0, 0].item():.4g}. "
               f"Expected {numbers(expected[0, 0, 0, 8:])} for pixels 8.. of row 0; yours {numbers(out[0, 0, 0, 8:])}.")


@exercise("02", "Compute mean and std from the training images only, then apply the same "
                "(x / 255 - mean) / std (and unsqueeze(1)) to all three splits.")
def check_normalize_splits(fn):
    train, val, test = _uint8_images(6, 2, 0, 128), _uint8_images(3, 3, 0, 256), _uint8_images(4, 4, 64, 256)
    pixels = train.double() / 255
    mean, std = pixels.mean().item(), pixels.std().item()
    expected = [((split.float() / 255 - mean) / std).unsqueeze(1) for split in (train, val, test)]
    outs = pair_result(fn(train.clone(), val.clone(), test.clone()), "normalize_splits(train, val, test)", 3)
    # The training split first, then the test split: its statistics are the classic leak.
    names, splits = ("training", "validation", "test"), (train, val, test)
    for i in (0, 2, 1):
        name, split, out, want = names[i], splits[i], outs[i], expected[i]
        out = tensor_result(out, f"normalize_splits's {name} result")
        expect_shape(out, want.shape, f"The {name} result")
        if close(out, want, 1e-3):
            continue
        own = split.float() / 255
        if name != "training" and close(out, ((own - own.mean()) / own.std()).unsqueeze(1), 1e-3):
            raise Fail(f"The {name} images were normalised with their own mean and std: normalisation statistics "
                       f"from the {name} set. Compute mean and std on the training images only and use those for "
                       "all three splits: the test set must not influence anything you use, not even a mean, and "
                       "the model must see every split exactly as it saw the training data.")
        everything = torch.cat([train, val, test]).double() / 255
        if close(out, ((own - everything.mean().item()) / everything.std().item()).unsqueeze(1), 1e-3):
            raise Fail("Your mean and std were computed on all the images together: the validation and test "
                       "images leaked into the statistics. Use the training images only.")
        raise Fail(f"The {name} result differs from (pixel / 255 - {mean:.4f}) / {std:.4f} (the training split's "
                   f"mean and std): expected {numbers(want[0, 0, 0, 8:])} for pixels 8.. of its first row, yours "
                   f"{numbers(out[0, 0, 0, 8:])}.")


@exercise("02", "order = torch.randperm(N, generator=generator), then take slices order[start:start + batch_size] "
                "for start in range(0, N, batch_size) and index BOTH images and labels with each slice.")
def check_shuffled_batches(fn):
    n, size = 23, 5
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).repeat(1, 1, 2, 2)  # image i is all i
    labels = torch.arange(n) + 100  # label of image i: i + 100
    call = f"shuffled_batches({n} images, {n} labels, batch_size={size})"
    result = fn(images.clone(), labels.clone(), size, generator(0))
    try:
        batches = list(result)
    except TypeError:
        raise Fail(f"{call} should return a list of (images, labels) pairs; yours returned {describe(result)}.") from None
    for i, batch in enumerate(batches):
        batch = pair_result(batch, f"Batch {i}")
        for part in batch:
            tensor_result(part, f"Batch {i}")
    sizes = [len(b[1]) for b in batches]
    if sizes == [size] * (n // size):
        raise Fail(f"{call} should give {math.ceil(n / size)} batches of sizes {[5, 5, 5, 5, 3]}; yours gives "
                   f"{len(batches)} of sizes {sizes}: the last, partial batch is missing, so 3 examples are never "
                   "trained on. (55,000 MNIST images in batches of 64, 03's size, make 860 batches, the last one of 24.)")
    if sizes != [5, 5, 5, 5, 3]:
        raise Fail(f"{call} should give batches of sizes [5, 5, 5, 5, 3]; yours gives sizes {sizes}.")
    ids = torch.cat([b[0][:, 0, 0, 0] for b in batches]).long()
    tags = torch.cat([b[1] for b in batches])
    if sorted(ids.tolist()) != list(range(n)):
        raise Fail(f"Every example should appear exactly once per epoch; in yours, {n - len(set(ids.tolist()))} "
                   "never appear and others appear twice: random indices were drawn with replacement. Shuffle "
                   "with a permutation, torch.randperm(N), instead.")
    if not torch.equal(ids + 100, tags):
        raise Fail("The images and labels are no longer pairs: image i should come with label i + 100, but in "
                   f"your first batch the images {ids[:5].tolist()} came with the labels {tags[:5].tolist()}. "
                   "Images and labels were shuffled with two different orders, so every label now belongs to "
                   "another image. Draw ONE order and index both with it.")
    if ids.tolist() == list(range(n)):
        raise Fail("Your batches are not shuffled: the examples come in their original order. Each epoch should "
                   "see them in a new random order (torch.randperm(N, generator=generator)).")


# ---------------------------------------------------------------------------
# 03 Train your first network
# ---------------------------------------------------------------------------
@exercise("03", "Linear(a, b) holds a * b weights and b biases. Add that up for each pair of neighbouring sizes: "
                "zip(sizes[:-1], sizes[1:]).")
def check_count_linear_parameters(fn):
    for sizes, expected in (([784, 128, 10], 101_770), ([784, 256, 128, 10], 235_146), ([784, 2, 10], 1_600),
                            ([3, 5], 20)):
        got = fn(list(sizes))
        call = f"count_linear_parameters({sizes})"
        if isinstance(got, bool) or not isinstance(got, int):
            if isinstance(got, float) and got == expected:
                raise Fail(f"{call} returned the float {got}; a count is a whole number: return an int.")
            raise Fail(f"{call} should return an int ({expected:,}); yours returned {describe(got)}.")
        if got == expected:
            continue
        weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        if got == weights:
            raise Fail(f"{call} should be {expected:,}; yours is {got:,}, the weights alone: the biases are "
                       f"missing (one per output neuron of each layer, {expected - weights:,} here).")
        raise Fail(f"{call} should be {expected:,}: "
                   + " + ".join(f"({a} * {b} + {b})" for a, b in zip(sizes[:-1], sizes[1:]))
                   + f"; yours is {got:,}.")


@exercise("03", "nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)), or a "
                "class like 03's SimpleNN. No softmax at the end.")
def check_build_simple_nn(fn):
    torch.manual_seed(0)
    for hidden, parameters in ((128, 101_770), (32, 25_450)):
        check_network(fn(hidden), call=f"build_simple_nn({hidden})", parameters=parameters,
                      formula=f"(784 * {hidden} + {hidden}) + ({hidden} * 10 + 10)")


@exercise("03", "logits.argmax(dim=1) is each row's (example's) predicted class; compare with labels, then "
                "take the mean of the matches as floats: (predictions == labels).float().mean().item().")
def check_accuracy(fn):
    g = generator(0)
    logits = torch.randn(10, 10, generator=g)
    labels = logits.argmax(dim=1).clone()
    labels[[1, 4, 7]] = (labels[[1, 4, 7]] + 1) % 10  # 7 of 10 right
    call = "accuracy(logits (10, 10), labels (10,))"
    got = float_result(fn(logits.clone(), labels.clone()), call)
    if abs(got - 0.7) < 1e-6:
        rect = torch.randn(7, 3, generator=g)
        rect_labels = rect.argmax(dim=1).clone()
        rect_labels[0] = (rect_labels[0] + 1) % 3  # 6 of 7
        got = float_result(fn(rect, rect_labels), "accuracy(logits (7, 3), labels (7,))")
        if abs(got - 6 / 7) > 1e-6:
            raise Fail(f"accuracy(logits (7, 3), labels (7,)) with 6 of 7 right should be {6 / 7:.4f}; yours "
                       f"returned {got:.4g}.")
        return
    if abs(got - 70) < 1e-4:
        raise Fail(f"{call} with 7 of 10 right should be 0.7, a fraction; yours returned {got:g}, a percentage.")
    if abs(got - 7) < 1e-6:
        raise Fail(f"{call} with 7 of 10 right should be 0.7; yours returned {got:g}, the count. Divide by the "
                   "number of examples.")
    wrong_dim = (logits.argmax(dim=0) == labels).float().mean().item()
    if abs(got - wrong_dim) < 1e-6:
        raise Fail(f"{call} should be 0.7; yours returned {got:g}: the argmax ran over dim=0, down the columns "
                   "(the best example for each class). Each ROW is one example: argmax(dim=1) is its prediction.")
    raise Fail(f"{call} with 7 of 10 right should be 0.7; yours returned {got:g}.")


@exercise("03", "Take each row's max out first (it cancels), then log_probs = z - log(exp(z).sum(dim=1, "
                "keepdim=True)); pick log_probs[range(B), labels] and return minus their mean.")
def check_cross_entropy(fn):
    g = generator(0)
    logits, labels = torch.randn(6, 4, generator=g) * 2, torch.randint(0, 4, (6,), generator=g)
    expected = F.cross_entropy(logits, labels).item()
    call = "cross_entropy(logits (6, 4), labels (6,))"
    got = float_result(fn(logits.clone(), labels.clone()), call)
    if abs(got - expected) > 1e-4:
        if abs(got - 6 * expected) < 1e-3:
            raise Fail(f"{call} should be {expected:.4f}, the MEAN over the 6 examples; yours is {got:.4f}, their "
                       "sum. (nn.CrossEntropyLoss averages, so the loss does not grow with the batch size.)")
        if abs(got + expected) < 1e-4:
            raise Fail(f"{call} should be {expected:.4f}; yours is {got:.4f}: the sign. The loss is MINUS the "
                       "log-probability of the true class, so it is positive and 0 only for a sure, right answer.")
        raise Fail(f"{call} should be {expected:.4f} (what nn.CrossEntropyLoss gives); yours is {got:.4f}.")
    big = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    call = "cross_entropy([[1000., 0., -1000.], [0., 1000., 0.]], labels [0, 0])"
    got = float_result(fn(big.clone(), torch.tensor([0, 0])), call)
    if not math.isfinite(got):
        raise Fail(f"{call} should be 500 (0 for the first, sure and right; 1000 for the second); yours is "
                   f"{got}. softmax gives exactly 0 in float32 for a logit 1000 below the top one, and "
                   "log(0) = -inf; or exp(1000) overflowed. Work in log space: z - max - log(sum(exp(z - max))).")
    if abs(got - 500) > 1e-2:
        raise Fail(f"{call} should be 500; yours is {got:.4g}.")


class TinyNet(nn.Module):
    """4 inputs -> 6 -> ReLU -> 3 classes, noting its mode at every forward pass."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        self.recorder = Recorder()

    def forward(self, x):
        return self.recorder(self.net(x))


def _train_variant(state, loader, order: str, lr: float):
    """Train a TinyNet from `state` for one epoch with the steps in `order`; returns (weights, batch losses, sizes).

    The letters: Z zero_grad, F forward, L loss, B backward, S step. "ZFLBS" is right.
    """
    model = TinyNet()
    model.load_state_dict(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses, sizes = [], []
    for images, labels in loader:
        loss = None
        for step in order:
            if step == "Z":
                optimizer.zero_grad()
            elif step == "F":
                logits = model(images)
            elif step == "L":
                loss = loss_fn(logits, labels)
            elif step == "B":
                loss.backward()
            elif step == "S":
                optimizer.step()
        losses.append(loss.item())
        sizes.append(len(labels))
    return [p.detach().clone() for p in model.parameters()], losses, sizes


WEIGHT_MISTAKES = {
    "FLBS": "the gradients are never zeroed, so they accumulate: each step used the sum of the gradients of "
            "every batch so far. Start each batch with optimizer.zero_grad() (step 1).",
    "ZFLSB": "optimizer.step() runs before loss.backward(): each step found no gradients yet (zero_grad had "
             "cleared them), so the weights never moved. The order is zero_grad, forward, loss, backward, step.",
    "FLBZS": "optimizer.zero_grad() runs after loss.backward() and before optimizer.step(): it wipes the "
             "gradients that step() needs, so the weights never moved. Zero them at the START of each batch.",
}


@exercise("03", "model.train() once, then per batch: optimizer.zero_grad(); logits = model(images); "
                "loss = loss_fn(logits, labels); loss.backward(); optimizer.step(). Keep a running "
                "total += loss.item() * len(labels) and a count of images; return total / count.")
def check_train_one_epoch(fn):
    torch.manual_seed(0)
    model, loader, lr = TinyNet(), tiny_loader(), 0.5
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()  # as evaluation left it: the learner's function must switch training mode on
    call = "train_one_epoch(model, loader of 17 images in batches of 5, 5, 5, 2, ...)"
    try:
        result = fn(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=lr))
    except RuntimeError as error:
        if "modified by an inplace operation" in str(error):
            raise Fail("optimizer.step() ran before loss.backward(): step() changed the weights in place, and the "
                       "backward pass still needed their old values, so PyTorch stopped (\"modified by an inplace "
                       "operation\"). The order is zero_grad, forward, loss, backward, step.") from error
        raise
    if isinstance(result, torch.Tensor) and result.requires_grad:
        raise Fail(f"{call} returned a tensor that still carries its computation graph: a running total built "
                   "with `total += loss` keeps the graph of every batch in memory. Add loss.item() * len(labels), "
                   "a plain number, and return a float.")
    got = float_result(result, call)
    modes = model.recorder.modes
    if len(modes) != len(loader):
        raise Fail(f"The model should see each of the {len(loader)} batches once (one forward pass each); in "
                   f"your epoch it ran {len(modes)} forward passes.")
    if not all(modes):
        raise Fail("The model was in evaluation mode while it trained: model.train() is missing. 03 evaluates "
                   "after every epoch (which switches to model.eval()), so from the second epoch on dropout "
                   "and batch norm would behave as at test time. Call model.train() at the start of the epoch.")
    weights = [p.detach() for p in model.parameters()]
    right, losses, sizes = _train_variant(state, loader, "ZFLBS", lr)
    if not all(close(a, b) for a, b in zip(weights, right)):
        start = [v for k, v in state.items()]
        if all(close(a, b) for a, b in zip(weights, start)):
            raise Fail("After your epoch the weights are exactly where they started: optimizer.step() never found "
                       "a gradient. Either optimizer.zero_grad() runs between loss.backward() and optimizer.step() "
                       "(it wipes the gradients step needs), or step() runs before backward(). The order is: "
                       "zero_grad, forward, loss, backward, step.")
        for order, message in WEIGHT_MISTAKES.items():
            variant, _, _ = _train_variant(state, loader, order, lr)
            if all(close(a, b) for a, b in zip(weights, variant)):
                raise Fail("The weights after your epoch are not what the five steps give: " + message)
        raise Fail("The weights after your epoch differ from the reference loop's (same start, same batches, "
                   f"SGD lr {lr}): its first weight row is {numbers(right[0][0])}, yours {numbers(weights[0][0])}. "
                   "Each batch needs exactly zero_grad, forward, loss, backward, step, in that order, once.")
    expected = sum(l * s for l, s in zip(losses, sizes)) / sum(sizes)
    if abs(got - expected) < 1e-5:
        return
    wrong = {
        "the LAST batch's loss, not the epoch's: keep a running total over all batches":
            losses[-1],
        "the mean of the batch means: the last batch holds 2 images but counts as much as a full one. Weight "
        "each batch's loss by its number of images (loss.item() * len(labels)), then divide by the images seen":
            sum(losses) / len(losses),
        "the sum of the batch losses: divide by the number of images seen":
            sum(losses),
        "the total divided by the number of batches; divide by the number of images":
            sum(l * s for l, s in zip(losses, sizes)) / len(losses),
        "the sum over all images, not divided by their number": sum(l * s for l, s in zip(losses, sizes)),
    }
    for message, value in wrong.items():
        if abs(got - value) < 1e-5:
            raise Fail(f"The weights are right, but the returned loss {got:.4f} is {message}. The mean loss per "
                       f"image over the epoch is {expected:.4f}.")
    raise Fail(f"The weights are right, but the returned loss should be {expected:.4f}, the mean loss per image "
               f"over the epoch (batch losses {numbers(torch.tensor(losses))} for {sizes} images); yours is {got:.4f}.")


@exercise("03", "model.eval(), then with torch.no_grad(): for each batch add (model(images).argmax(dim=1) == "
                "labels).sum().item() to a correct count and len(labels) to a total; return correct / total.")
def check_evaluate(fn):
    torch.manual_seed(0)
    loader = tiny_loader()
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5), Recorder())
    recorder = model[3]
    model.eval()
    with torch.no_grad():
        predictions = model(loader.images).argmax(dim=1)
    labels = predictions.clone()
    labels[[0, 1, 2, 5, 6, 10]] = (labels[[0, 1, 2, 5, 6, 10]] + 1) % 3  # 11 of 17 right: 2/5, 3/5, 4/5, 2/2
    loader = dl_utils.InMemoryLoader(loader.images, labels, batch_size=5, shuffle=False)
    recorder.modes.clear()
    recorder.grad_enabled.clear()
    model.train()  # as training left it
    call = "evaluate(model, loader of 17 images in batches of 5, 5, 5, 2)"
    got = float_result(fn(model, loader), call)
    if not recorder.modes:
        raise Fail(f"{call} never ran the model.")
    if any(recorder.modes):
        raise Fail("The model was still in training mode while you evaluated it: model.eval() is missing. Dropout "
                   "was switching half the neurons off at random, so the accuracy is lower than it should be and "
                   "changes from run to run (04 section 3).")
    if any(recorder.grad_enabled):
        raise Fail("The evaluation ran with autograd recording: torch.no_grad() is missing. Without it every "
                   "forward pass keeps its graph for a backward() that never comes: more memory, slower, for "
                   "nothing. Wrap the loop in `with torch.no_grad():`.")
    if abs(got - 11 / 17) < 1e-6:
        return
    if abs(got - (0.4 + 0.6 + 0.8 + 1.0) / 4) < 1e-6:
        raise Fail(f"{call} should be 11 / 17 = {11 / 17:.4f}; yours is {got:.4f}, the mean of the batch "
                   "accuracies: the last batch holds 2 images but counted as much as a full one. Count correct "
                   "answers and images over all batches, then divide.")
    if abs(got - 100 * 11 / 17) < 1e-3:
        raise Fail(f"{call} should be {11 / 17:.4f}, a fraction; yours is {got:.4g}, a percentage.")
    raise Fail(f"{call} with 11 of 17 right should be {11 / 17:.4f}; yours is {got:.4f}.")


@exercise("03", "Find the epoch of the lowest loss (the first one, if several are equal) and count the epochs "
                "after it: len(val_losses) - 1 - best_epoch. Stop when that is >= patience.")
def check_should_stop(fn):
    cases = [([], 2, False), ([1.0], 1, False), ([1.0, 0.9], 1, False), ([1.0, 0.9, 0.95], 1, True),
             ([1.0, 0.9, 0.95], 2, False), ([1.0, 0.9, 0.95, 0.96], 2, True),
             ([1.0, 0.8, 0.9, 0.85, 0.87], 3, True), ([1.0, 0.9, 0.9, 0.9, 0.9], 3, True),
             ([0.5, 0.6, 0.4, 0.45], 2, False)]
    for losses, patience, expected in cases:
        call = f"should_stop({losses}, patience={patience})"
        got = fn(list(losses), patience)
        if not isinstance(got, (bool, torch.Tensor)) and got not in (0, 1):
            raise Fail(f"{call} should return True or False; yours returned {describe(got)}.")
        if bool(got) == expected:
            continue
        if not losses:
            raise Fail(f"{call} should be False: no epoch yet, nothing to stop.")
        best = min(range(len(losses)), key=lambda i: losses[i])
        since = len(losses) - 1 - best
        why = (f"the lowest loss, {losses[best]}, came at epoch {best + 1}, {since} epoch{'s' if since != 1 else ''} "
               f"before the last")
        if losses == [1.0, 0.8, 0.9, 0.85, 0.87]:
            why += ("; 0.85 was better than the epoch before it, but not better than the best, 0.8, so it does not "
                    "count: compare with the BEST loss, not the previous one")
        if losses == [1.0, 0.9, 0.9, 0.9, 0.9]:
            why += "; an equal loss is no improvement (03's epoch loop uses <)"
        raise Fail(f"{call} should be {expected}: {why}; yours returned {bool(got)}.")


def _backprop_inputs(seed=0):
    g = generator(seed)
    B, D, H, C = 5, 6, 4, 3
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (B,), generator=g)
    params = {"W1": torch.randn(H, D, generator=g, dtype=torch.float64), "b1": torch.randn(H, generator=g, dtype=torch.float64),
              "W2": torch.randn(C, H, generator=g, dtype=torch.float64), "b2": torch.randn(C, generator=g, dtype=torch.float64)}
    return x, labels, params


def _autograd_gradients(x, labels, params, *, relu_grad=True):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    pre = x @ leaves["W1"].T + leaves["b1"]
    h = torch.relu(pre) if relu_grad else pre.clamp(min=0).detach() + pre - pre.detach()
    loss = F.cross_entropy(h @ leaves["W2"].T + leaves["b2"], labels)
    loss.backward()
    return {k: v.grad for k, v in leaves.items()}


@exercise("03", "Forward: pre = x @ W1.T + b1, h = relu(pre), logits = h @ W2.T + b2, p = softmax(logits). "
                "Backward: d_logits = (p - one_hot(labels)) / B; d_W2 = d_logits.T @ h; d_b2 = d_logits.sum(0); "
                "d_h = d_logits @ W2; d_pre = d_h * (pre > 0); d_W1 = d_pre.T @ x; d_b1 = d_pre.sum(0).")
def check_backprop_by_hand(fn):
    x, labels, params = _backprop_inputs()
    expected = _autograd_gradients(x, labels, params)
    call = "backprop_by_hand(x (5, 6), labels (5,), W1 (4, 6), b1 (4,), W2 (3, 4), b2 (3,))"
    try:
        with torch.no_grad():  # autograd off: the gradients must come from the learner's own maths
            got = fn(x.clone(), labels.clone(), *(params[k].clone() for k in ("W1", "b1", "W2", "b2")))
    except RuntimeError as error:
        if "does not require grad" in str(error) or "does not have a grad_fn" in str(error):
            raise Fail("Your function called backward() (or torch.autograd): this exercise asks for the "
                       "gradients by hand, with tensor operations only, and the checker runs it with autograd "
                       "switched off. Write each gradient with the chain rule, from the loss back to W1.") from error
        raise
    if not isinstance(got, dict) or sorted(got) != ["W1", "W2", "b1", "b2"]:
        raise Fail(f"{call} should return a dict with the keys 'W1', 'b1', 'W2', 'b2'; yours returned {describe(got)}.")
    for name in ("b2", "W2", "b1", "W1"):  # in backpropagation's order: from the loss backwards
        value = tensor_result(got[name], f"The gradient {name!r}")
        expect_shape(value, expected[name].shape, f"The gradient {name!r}", f", the shape of {name} itself")
        if close(value, expected[name], 1e-6):
            continue
        if close(value, expected[name] * len(labels), 1e-6):
            raise Fail(f"Your gradient for {name} is exactly {len(labels)} times autograd's, the batch size: the "
                       "loss is the MEAN over the batch, so d loss / d logits is (softmax - one_hot) / B.")
        no_relu = _autograd_gradients(x, labels, params, relu_grad=False)
        if name in ("W1", "b1") and close(value, no_relu[name], 1e-6):
            raise Fail(f"Your gradient for {name} ignores the ReLU: its derivative is 1 where its input was "
                       "positive and 0 elsewhere, so multiply d_h by (pre > 0) before going on to W1 and b1.")
        later = [n for n in ("b2", "W2") if n != name and close(got[n], expected[n], 1e-6)] if name in ("b1", "W1") else []
        note = (f" ({' and '.join(later)} {'are' if len(later) > 1 else 'is'} right, so the mistake lies between "
                "the logits and the first layer)") if later else ""
        raise Fail(f"Your d loss / d {name} differs from autograd's{note}: autograd says {numbers(expected[name])}, "
                   f"yours is {numbers(value)}.")


# ---------------------------------------------------------------------------
# 04 Load and use a model
# ---------------------------------------------------------------------------
@exercise("04", "nn.Linear(784, hidden) stores its weight as (out_features, in_features) = (hidden, 784): "
                "state_dict['fc1.weight'].shape[0].")
def check_hidden_size_from_checkpoint(fn):
    for hidden, batch_norm in ((128, False), (32, False), (7, True)):
        state = dl_utils.SimpleNN(hidden=hidden, batch_norm=batch_norm).state_dict()  # 03's model, harvested
        call = f"hidden_size_from_checkpoint(the state_dict of SimpleNN(hidden={hidden}))"
        got = fn(state)
        got = int(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if got == 784:
            raise Fail(f"{call} should be {hidden}; yours is 784, the number of inputs. fc1.weight has shape "
                       f"{tuple(state['fc1.weight'].shape)}: nn.Linear stores (out_features, in_features).")
        if got != hidden:
            raise Fail(f"{call} should be {hidden}; yours is {describe(got)}. Its fc1.weight has shape "
                       f"{tuple(state['fc1.weight'].shape)}.")


@exercise("04", "probabilities = torch.softmax(logits, dim=1); then probabilities.max(dim=1) gives both the "
                "confidences (values) and the predictions (indices).")
def check_logits_to_prediction(fn):
    logits = torch.randn(5, 4, generator=generator(0)) * 3
    probs = torch.softmax(logits, dim=1)
    want_conf, want_pred = probs.max(dim=1)
    call = "logits_to_prediction(logits (5, 4))"
    pred, conf = pair_result(fn(logits.clone()), call)
    pred, conf = tensor_result(pred, f"{call}'s predictions"), tensor_result(conf, f"{call}'s confidences")
    expect_shape(pred, (5,), f"{call}'s predictions", ": one class per example")
    expect_shape(conf, (5,), f"{call}'s confidences")
    if pred.is_floating_point() or not torch.equal(pred.long(), want_pred):
        raise Fail(f"The predictions should be the classes {want_pred.tolist()} (int64, the argmax of each row); "
                   f"yours are {describe(pred)}.")
    if close(conf, logits.max(dim=1).values):
        raise Fail(f"Your confidences {numbers(conf)} are the largest raw logits, not probabilities. Apply softmax "
                   f"first: the confidences should be {numbers(want_conf)}, each between 0 and 1.")
    if close(conf, torch.softmax(logits, dim=0).gather(1, want_pred[:, None])[:, 0]) or \
            close(conf, torch.softmax(logits, dim=0).max(dim=1).values):
        raise Fail(f"Your confidences {numbers(conf)} come from a softmax over the wrong dimension (dim=0, across "
                   "the examples). Each ROW (one example's scores) should sum to 1: softmax(logits, dim=1).")
    if not close(conf, want_conf, 1e-5):
        raise Fail(f"The confidences should be {numbers(want_conf)} (each row's largest softmax probability); "
                   f"yours are {numbers(conf)}.")


@exercise("04", "model.eval(), then compute inside `with torch.no_grad():`, then softmax(dim=1) and .max(dim=1) "
                "as in logits_to_prediction.")
def check_predict(fn):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3), Recorder())
    images = torch.randn(8, 1, 2, 2, generator=generator(1))
    model.eval()
    with torch.no_grad():
        want_conf, want_pred = torch.softmax(model(images), dim=1).max(dim=1)
    recorder = model[5]
    recorder.modes.clear()
    recorder.grad_enabled.clear()
    model.train()  # as training left it
    call = "predict(model, images (8, 1, 2, 2))"
    pred, conf = pair_result(fn(model, images.clone()), call)
    if any(recorder.modes):
        raise Fail("The model was still in training mode: model.eval() is missing, so dropout switched neurons "
                   "off at random and the same digit could get a different answer every time you ask.")
    if any(recorder.grad_enabled):
        raise Fail("The model ran with autograd recording: torch.no_grad() is missing. Inference needs no "
                   "graph for backward(); without no_grad it is kept anyway (memory, time).")
    pred, conf = tensor_result(pred, f"{call}'s predictions"), tensor_result(conf, f"{call}'s confidences")
    if pred.is_floating_point() or tuple(pred.shape) != (8,) or not torch.equal(pred.long(), want_pred):
        raise Fail(f"The predictions should be {want_pred.tolist()}; yours are {describe(pred)}.")
    if not close(conf, want_conf, 1e-5):
        raise Fail(f"The confidences should be {numbers(want_conf)} (softmax probabilities); yours are {describe(conf)}.")


def _small_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@exercise("04", "torch.save(model.state_dict(), path); fresh = make_model(); "
                "fresh.load_state_dict(torch.load(path, weights_only=True)); return fresh.")
def check_save_and_reload(fn):
    model = _small_model(0)
    x = torch.randn(5, 3, generator=generator(3))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pth"
        fresh = fn(model, lambda: _small_model(1), path)
        if fresh is model:
            raise Fail("save_and_reload returned the very model it was given: nothing was loaded. Build a new one "
                       "with make_model() and load the saved weights into it.")
        if not isinstance(fresh, nn.Module):
            raise Fail(f"save_and_reload should return the new nn.Module; yours returned {describe(fresh)}.")
        if not path.is_file():
            raise Fail(f"Nothing was saved at the path you were given ({path.name}): torch.save(model.state_dict(), path).")
        try:
            saved = torch.load(path, weights_only=True)
        except Exception:  # UnpicklingError: a whole pickled model
            raise Fail("The file holds the whole model object (torch.save(model)), which torch.load(..., "
                       "weights_only=True) refuses, as it should: a pickled object can run code when loaded. "
                       "Save the state_dict instead: torch.save(model.state_dict(), path). (04 section 7)") from None
        if not isinstance(saved, dict) or sorted(saved) != sorted(model.state_dict()):
            raise Fail(f"The saved file should hold the model's state_dict (keys {sorted(model.state_dict())}); "
                       f"it holds {describe(saved)}.")
    with torch.no_grad():
        if not close(fresh(x), model(x)):
            raise Fail("The new model does not compute what the saved one does: its weights are still the random "
                       "ones make_model() gave it. Pour the saved weights in with load_state_dict.")


@exercise("04", "confidence = probabilities.max(dim=1).values, then confidence.argsort() (ascending: least sure "
                "first) and keep the first k.")
def check_least_confident(fn):
    probs = torch.tensor([[0.90, 0.05, 0.05], [0.30, 0.40, 0.30], [0.005, 0.99, 0.005], [0.10, 0.35, 0.55],
                          [0.33, 0.32, 0.35], [0.15, 0.15, 0.70], [0.50, 0.45, 0.05], [0.03, 0.02, 0.95]])
    call = "least_confident(probabilities (8, 3), k=3)"
    got = fn(probs.clone(), 3)
    got = torch.as_tensor(got) if isinstance(got, (list, tuple)) else tensor_result(got, call)
    expected = [4, 1, 6]
    if got.tolist() == expected:
        return
    if got.tolist() == [2, 7, 0]:
        raise Fail(f"{call} should be {expected} (confidences 0.35, 0.4, 0.5); yours is {got.tolist()}, the MOST "
                   "confident rows. Sort ascending: argsort() without descending=True.")
    smallest = probs.min(dim=1).values.argsort()[:3].tolist()
    if got.tolist() == smallest or got.tolist() == probs.min(dim=1).values.argsort(descending=True)[:3].tolist():
        raise Fail(f"{call} should be {expected}; yours is {got.tolist()}: you sorted by each row's SMALLEST "
                   "probability. A model's confidence is its largest probability (the one of its prediction).")
    raise Fail(f"{call} should be {expected}: the rows with the confidences 0.35, 0.4 and 0.5, least sure first; "
               f"yours is {got.tolist()}.")


# ---------------------------------------------------------------------------
# 05 An honest experiment
# ---------------------------------------------------------------------------
@exercise("05", "nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), "
                "nn.Linear(128, 10)).")
def check_three_layer_nn(fn):
    torch.manual_seed(0)
    check_network(fn(), call="three_layer_nn()", parameters=235_146,
                  formula="(784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10) = 200,960 + 32,896 + 1,290")


@exercise("05", "Expand W2 (W1 x + b1) + b2: the x-part is (W2 @ W1) x and the constant part W2 @ b1 + b2.")
def check_collapse_linear(fn):
    g = generator(0)
    W1, b1 = torch.randn(5, 7, generator=g), torch.randn(5, generator=g)
    W2, b2 = torch.randn(3, 5, generator=g), torch.randn(3, generator=g)
    call = "collapse_linear(W1 (5, 7), b1 (5,), W2 (3, 5), b2 (3,))"
    W, b = pair_result(fn(W1, b1, W2, b2), call)
    W, b = tensor_result(W, f"{call}'s W"), tensor_result(b, f"{call}'s b")
    if tuple(W.shape) == (7, 3):
        raise Fail(f"{call}'s W should have shape (3, 7), (outputs, inputs) like every nn.Linear weight; yours is "
                   "(7, 3), transposed: W = W2 @ W1.")
    expect_shape(W, (3, 7), f"{call}'s W")
    expect_shape(b, (3,), f"{call}'s b")
    x = torch.randn(4, 7, generator=g)
    want = (x @ W1.T + b1) @ W2.T + b2
    if close(x @ W.T + b, want, 1e-4):
        return
    if close(W, W2 @ W1, 1e-4) and close(b, b2):
        raise Fail("W is right but b is only b2: the first layer's bias goes through W2 too. "
                   "W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2).")
    raise Fail(f"x @ W.T + b should equal the two layers' output for every x; for one x the layers give "
               f"{numbers(want[0])}, yours {numbers((x @ W.T + b)[0])}.")


@exercise("05", "max(runs, key=lambda run: run['val_accuracy']): choose by validation, report the test accuracy "
                "of the run you chose.")
def check_best_run(fn):
    runs = [{"name": "dropout", "val_accuracy": 0.970, "test_accuracy": 0.981},
            {"name": "wider", "val_accuracy": 0.981, "test_accuracy": 0.975},
            {"name": "baseline", "val_accuracy": 0.975, "test_accuracy": 0.978}]
    got = fn([dict(run) for run in runs])
    if not isinstance(got, dict):
        raise Fail(f"best_run should return the chosen run's dict; yours returned {describe(got)}.")
    if got.get("name") == "dropout":
        raise Fail("You chose the run with the best TEST accuracy (0.981). Choosing by it makes the test set part "
                   "of your tuning, so its score is no longer an honest estimate for new digits. Choose by "
                   "validation accuracy ('wider', 0.981), and report that run's test accuracy.")
    if got.get("name") != "wider":
        raise Fail(f"best_run should pick 'wider' (validation accuracy 0.981, the highest); yours picked {got!r}.")
    second = fn([dict(runs[2]), dict(runs[0])])
    if not isinstance(second, dict) or second.get("name") != "baseline":
        raise Fail(f"best_run([baseline (val 0.975), dropout (val 0.970)]) should pick 'baseline'; yours picked "
                   f"{describe(second)}.")


@exercise("05", "noise = math.sqrt(statistics.stdev(a) ** 2 / len(a) + statistics.stdev(b) ** 2 / len(b)): "
                "std / sqrt(n) is how much a mean of n seeds wobbles. Then compare the gap with 2 * noise.")
def check_compare_with_noise(fn):
    clear_a, clear_b = [0.976, 0.978, 0.977], [0.970, 0.971, 0.972]
    cases = [(clear_a, clear_b, "a", ""), (clear_b, clear_a, "b", ""),
             ([0.975, 0.980, 0.970], [0.972, 0.976, 0.971], "noise", ""),
             ([0.978, 0.980, 0.982, 0.979, 0.981], [0.974, 0.976, 0.978, 0.975, 0.977], "a",
              " The noise of a MEAN of n seeds is std / sqrt(n): did you forget to divide the variances by n?"),
             ([0.979, 0.983], [0.974, 0.978], "noise",
              " Use the sample standard deviation (statistics.stdev, divides by n - 1); statistics.pstdev "
              "(divides by n) underestimates the spread of so few seeds.")]
    for a, b, expected, note in cases:
        call = f"compare_with_noise({a}, {b})"
        got = fn(list(a), list(b))
        if got == expected:
            continue
        gap = statistics.mean(a) - statistics.mean(b)
        noise = math.sqrt(statistics.stdev(a) ** 2 / len(a) + statistics.stdev(b) ** 2 / len(b))
        raise Fail(f"{call} should be {expected!r}: the gap is {gap:+.4f} and twice its noise is {2 * noise:.4f}; "
                   f"yours returned {got!r}.{note}")


# ---------------------------------------------------------------------------
# 06 Convolutional networks
# ---------------------------------------------------------------------------
@exercise("06", "(size + 2 * padding - kernel) // stride + 1: the padding goes on both sides, and // keeps it a "
                "whole number.")
def check_conv_output_size(fn):
    cases = [((28, 3, 1, 1), 28), ((28, 3, 0, 1), 26), ((28, 2, 0, 2), 14), ((14, 2, 0, 2), 7),
             ((28, 5, 2, 2), 14), ((7, 3, 0, 2), 3), ((29, 2, 0, 2), 14)]
    for (size, kernel, padding, stride), expected in cases:
        call = f"conv_output_size({size}, kernel={kernel}, padding={padding}, stride={stride})"
        got = fn(size, kernel, padding=padding, stride=stride)
        if got == expected and isinstance(got, int) and not isinstance(got, bool):
            continue
        if isinstance(got, float):
            raise Fail(f"{call} should be the int {expected}; yours returned the float {got}: use floor division "
                       "// (a filter cannot sit at a fractional position).")
        if got == (size + padding - kernel) // stride + 1:
            raise Fail(f"{call} should be {expected}; yours is {got}: padding is added on BOTH sides, so the padded "
                       "width is size + 2 * padding.")
        if got == size + 2 * padding - kernel + 1:
            raise Fail(f"{call} should be {expected}; yours is {got}: the stride is missing. With stride 2 the "
                       "filter jumps 2 pixels at a time, so divide (// stride) before adding 1.")
        raise Fail(f"{call} should be {expected}; yours is {describe(got)}.")


@exercise("06", "out_channels * (in_channels * kernel * kernel) + out_channels: every filter spans all the input "
                "channels, and has one bias.")
def check_conv_parameters(fn):
    for (cin, cout, k), expected in (((1, 32, 3), 320), ((32, 64, 3), 18_496), ((3, 8, 5), 608)):
        call = f"conv_parameters({cin}, {cout}, {k})"
        got = fn(cin, cout, k)
        if got == expected and not isinstance(got, bool):
            continue
        if got == cout * cin * k * k:
            raise Fail(f"{call} should be {expected:,}; yours is {got:,}: the biases are missing, one per filter "
                       f"({cout} here).")
        if got == cout * k * k + cout and cin > 1:
            raise Fail(f"{call} should be {expected:,}; yours is {got:,}: each filter has {k} x {k} weights for "
                       f"EACH of the {cin} input channels, not for one.")
        raise Fail(f"{call} should be {expected:,} = {cout} * ({cin} * {k} * {k}) + {cout}; yours is {describe(got)}.")


@exercise("06", "x.reshape(B, C, H // 2, 2, W // 2, 2) puts each 2 x 2 block on the axes 3 and 5; .amax(dim=(3, 5)) "
                "keeps its largest value.")
def check_max_pool_2x2(fn):
    x = torch.randn(2, 3, 4, 6, generator=generator(0))
    expected = F.max_pool2d(x, 2)
    call = "max_pool_2x2(x (2, 3, 4, 6))"
    out = tensor_result(fn(x.clone()), call)
    expect_shape(out, (2, 3, 2, 3), call, ": half the height and half the width")
    if close(out, expected):
        return
    if close(out, F.avg_pool2d(x, 2)):
        raise Fail("Your pooling averages each 2 x 2 block; max pooling keeps its LARGEST value (06 section 1).")
    raise Fail(f"out[0, 0, 0, 0] should be the max of x[0, 0, 0:2, 0:2] = {numbers(x[0, 0, :2, :2])}, i.e. "
               f"{expected[0, 0, 0, 0].item():.4f}; yours is {out[0, 0, 0, 0].item():.4f}. Check which numbers "
               "end up in one block after your reshape.")


@exercise("06", "labels * num_classes + predictions gives each (true, predicted) pair its own number; "
                "torch.bincount(..., minlength=num_classes ** 2).reshape(num_classes, num_classes).")
def check_confusion_matrix(fn):
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    predictions = torch.tensor([0, 1, 1, 1, 2, 2, 3, 0])
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(labels.tolist(), predictions.tolist()):
        expected[t, p] += 1
    call = "confusion_matrix(predictions, labels, num_classes=4)"
    out = tensor_result(fn(predictions.clone(), labels.clone(), num_classes=4), call)
    expect_shape(out, (4, 4), call)
    if out.is_floating_point():
        raise Fail(f"Counts are whole numbers: return an integer tensor (int64); yours is {out.dtype}.")
    if torch.equal(out.long(), expected):
        return
    if torch.equal(out.long(), expected.T):
        raise Fail(f"Your matrix is transposed: row = the TRUE class, column = the prediction. The true 3 read "
                   f"as 0 belongs in row 3, column 0; expected {expected.tolist()}, yours {out.tolist()}.")
    raise Fail(f"{call} with labels {labels.tolist()} and predictions {predictions.tolist()} should be "
               f"{expected.tolist()}; yours is {out.tolist()}.")


def _fgsm_setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    mean, std = 0.13, 0.31
    low, high = (0 - mean) / std, (1 - mean) / std
    images = low + (high - low) * torch.rand(6, 1, 2, 2, generator=generator(1))
    images[0, 0, 0, 0], images[1, 0, 1, 1] = low, high  # black and white pixels: the clamp matters
    labels = torch.randint(0, 3, (6,), generator=generator(2))
    return model, images, labels, mean, std, low, high


def _fgsm_ref(model, images, labels, epsilon, std, low, high, sign=1.0, scale=True, clamp=True):
    x = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    out = x.detach() + sign * (epsilon / std if scale else epsilon) * gradient.sign()
    return out.clamp(low, high) if clamp else out


@exercise("06", "x = images.clone().requires_grad_(True); loss = F.cross_entropy(model(x), labels); "
                "(g,) = torch.autograd.grad(loss, x); then (x.detach() + epsilon / std * g.sign()).clamp(low, high).")
def check_fgsm(fn):
    model, images, labels, mean, std, low, high = _fgsm_setup()
    epsilon = 0.1
    expected = _fgsm_ref(model, images, labels, epsilon, std, low, high)
    given = images.clone()
    call = "fgsm(model, images (6, 1, 2, 2), labels, epsilon=0.1, mean=0.13, std=0.31)"
    out = tensor_result(fn(model, given, labels.clone(), epsilon, mean, std), call)
    if not torch.equal(given, images):
        raise Fail("Your fgsm changed the images it was given; work on a copy (images.clone()).")
    expect_shape(out, images.shape, call)
    if out.requires_grad:
        raise Fail("The adversarial images still carry the computation graph: return x_adv.detach() (or compute "
                   "it from x.detach()).")
    if close(out, expected):
        return
    variants = {
        "moved every pixel DOWNHILL (minus the gradient's sign): that lowers the loss and makes the model surer. "
        "FGSM moves uphill, + epsilon * sign(gradient), to raise the loss.": dict(sign=-1.0),
        "moved each pixel by epsilon in normalised units. epsilon is in pixel units (0..1); in the normalised "
        "images one pixel unit is 1 / std, so the step is epsilon / std.": dict(scale=False),
        "let pixels go beyond black and white: clamp the result to (0 - mean) / std .. (1 - mean) / std.":
            dict(clamp=False),
    }
    for message, options in variants.items():
        if close(out, _fgsm_ref(model, images, labels, epsilon, std, low, high, **options)):
            raise Fail("Your fgsm " + message)
    raise Fail(f"Image 0 should become {numbers(expected[0])}; yours is {numbers(out[0])}.")
