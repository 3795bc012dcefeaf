"""The checks behind `python exercises/check.py`: one per exercise, registered with its hints by @exercise.

A check gets the learner's function, tests what it DOES on small tensors against a reference (never its source: any
correct solution passes) and raises Fail("...") in plain words unless solved. Where a typical mistake gives a telling
wrong answer (gradients not zeroed, the wrong dimension, test-set statistics...), the check names it (verdict)."""

import copy
import gc
import json
import math
import statistics
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
import dl_utils  # noqa: E402  (after the path is set)


class Fail(Exception):  # the exercise is not solved; the message says why, in plain words
    pass


@dataclass
class Exercise:
    lesson: str  # "01" .. "08", a key of check.py's LESSONS
    name: str  # the function's name in exercises/exNN_topic.py
    check: object  # check(fn) -> None, raises Fail
    hints: tuple  # steps: `--hint` shows the idea, `--hint 2` a closer pointer; never the answer


EXERCISES: list[Exercise] = []  # in registration order, which is course order


def exercise(lesson: str, *hints: str):
    """Register `check_<name>` as the check of exercise <name> in lesson `lesson`, with its hints in steps."""
    assert len(hints) >= 2, "give each exercise at least two hint steps: the idea, then a closer pointer"

    def register(check):
        EXERCISES.append(Exercise(lesson, check.__name__[len("check_"):], check, hints))
        return check
    return register


# LEARNING_GUIDE.md's "Success checklist", compact, as `check.py` ends with it: each item, and its exercises or a note.
CHECKLIST = [
    ("Tensors: shapes, @ and broadcasting", ("flatten_batch", "center_columns", "linear_forward")),
    ("Why gradients are zeroed before backward()", ("derivative",)),
    ("The train/val/test split; test used once", ("normalize_splits", "best_run")),
    ("Normalisation and its statistics", ("normalize_images", "normalize_splits")),
    ("The five-step training loop from memory", ("train_one_epoch", "backprop_by_hand")),
    ("Parameter counts by hand (101,770)", ("count_linear_parameters", "three_layer_nn")),
    ("A change judged against the seed noise", ("compare_with_noise",)),
    ("The best run by validation, not test", ("best_run",)),
    ("Your own digit through your model", ("normalize_images", "predict")),
    ("Save, reload, fix a size mismatch", ("save_and_reload", "hidden_size_from_checkpoint")),
    ("Good fit, over/underfitting, lr too high", ("diagnose",)),
    ("Why ReLU is preferred over tanh", ("saturation",)),
    ("No activations: a linear classifier", ("collapse_linear",)),
    ("A conv layer's output shape and parameters", ("conv_output_size", "conv_parameters")),
    ("Read a confusion matrix", ("confusion_matrix",)),
    ("Find a silent bug from its symptom", tuple(f"fix_{n}" for n in ("train_epoch", "evaluate", "train_step",
     "normalize", "shuffle", "prepare_digit", "channels_first", "fit", "prepare_batch"))),
    ("Use dl_utils from your own script", "on your own (no exercise)"),
    ("Hyperparameters for a new problem", "python exercises/check.py --challenge few (real MNIST)"),
]


# --- Helpers: how results are judged and described to the learner -----------------------------------------------
def fail_if(condition, message: str) -> None:
    """One typical mistake: Fail with its message when the learner's result shows it."""
    if condition:
        raise Fail(message)


def verdict(out, expected, otherwise: str, *mistakes: tuple, same=None, like=None) -> None:
    """Pass when `same(out, expected)`; else Fail with the message of the first (wrong answer, message) mistake that
    out is `like` (default: same), else with `otherwise`. By default tensors compare with close(), the rest with ==."""
    same = same or (lambda a, b: close(a, b) if isinstance(a, torch.Tensor) else a == b)
    if not same(out, expected):
        raise Fail(next((message for wrong, message in mistakes if (like or same)(out, wrong)), otherwise))


def near(tolerance: float):
    """A comparison for verdict: tensors with close(a, b, tolerance), numbers within tolerance (NaN never)."""
    return lambda a, b: close(a, b, tolerance) if isinstance(a, torch.Tensor) else abs(a - b) < tolerance


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
    fail_if(not isinstance(value, torch.Tensor), f"{call} should return a tensor; yours returned {describe(value)}.")
    return value


def float_result(value, call: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    fail_if(isinstance(value, bool) or not isinstance(value, (int, float)), f"{call} should return a number (a Python "
            f"float); yours returned {describe(value)}.")
    return float(value)


def pair_result(value, call: str, count: int = 2) -> tuple:
    fail_if(not isinstance(value, (tuple, list)) or len(value) != count, f"{call} should return {count} things, as "
            f"a tuple; yours returned {describe(value)}.")
    return tuple(value)


def close(a, b, atol: float = 1e-5) -> bool:
    """Same shape and values (NaN never matches)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=1e-4))


def expect_shape(result: torch.Tensor, shape: tuple, call: str, why: str = "") -> None:
    fail_if(tuple(result.shape) != tuple(shape), f"{call} should have shape {tuple(shape)}{why}; yours has shape "
            f"{tuple(result.shape)}.")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Recorder(nn.Module):
    """Passes its input through, noting the model's mode and whether autograd records (since the last forget())."""

    def __init__(self):
        super().__init__()
        self.forget()

    def forget(self):
        self.modes, self.grad_enabled = [], []

    def forward(self, x):
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        return x


def tiny_loader(n: int = 17, batch_size: int = 5, *, features: int = 4, classes: int = 3, seed: int = 0):
    """n synthetic examples (n, 1, 2, 2) in unshuffled batches; the last one is partial (17 = 3 x 5 + 2)."""
    g = generator(seed)
    images, labels = torch.randn(n, 1, 2, features // 2, generator=g), torch.randint(0, classes, (n,), generator=g)
    return dl_utils.InMemoryLoader(images, labels, batch_size=batch_size, shuffle=False)


def check_network(model, *, call: str, parameters: int, formula: str) -> None:
    """Shared by build_simple_nn and three_layer_nn: a (B, 1, 28, 28) -> (B, 10) non-linear net of logits."""
    def is_affine(shape) -> bool:  # model(a) + model(b) - model(0) == model(a + b): no non-linearity anywhere
        a, b = torch.randn(*shape, generator=generator(1)), torch.randn(*shape, generator=generator(2))
        with torch.no_grad():
            return bool(torch.allclose(model(a) + model(b) - model(torch.zeros(shape)), model(a + b), atol=1e-4))
    fail_if(not isinstance(model, nn.Module), f"{call} should return an nn.Module (e.g. an nn.Sequential); yours "
            f"returned {describe(model)}.")
    count = sum(p.numel() for p in model.parameters())
    fail_if(count != parameters, f"{call} has {count:,} parameters; it should have {parameters:,}: {formula}.")
    with torch.no_grad():
        out = tensor_result(model.eval()(torch.randn(4, 1, 28, 28, generator=generator(2))), f"{call}(images)")
    expect_shape(out, (4, 10), "Its output for 4 images (4, 1, 28, 28)", ": one row of 10 logits per image")
    fail_if(bool((out >= 0).all()) and torch.allclose(out.sum(dim=1), torch.ones(4), atol=1e-4), "Every row of its "
            "output is positive and sums to 1: the network ends with a softmax. Return raw logits instead; "
            "nn.CrossEntropyLoss applies (log-)softmax itself, and a second softmax in front of it makes learning "
            "slow.")
    fail_if(is_affine((3, 1, 28, 28)), "The network is linear: model(a) + model(b) - model(0) equals "
            "model(a + b). Without an activation such as nn.ReLU() between the Linear layers they collapse into ONE "
            "linear map (05's NoActivationNN shows it), so the hidden layer adds parameters but no power.")


# --- 01 Hello, PyTorch ------------------------------------------------------------------------------------------
@exercise("01", "Keep the first (batch) dimension and merge the other three: (B, 1, 28, 28) -> (B, 784).",
          "01 section 3: reshape (or view) takes the new shape, and -1 stands for 'whatever is left'; flatten has a "
          "start_dim. B comes from images.shape.")
def check_flatten_batch(fn):
    images = torch.arange(3 * 784, dtype=torch.float32).reshape(3, 1, 28, 28)
    out = tensor_result(fn(images.clone()), "flatten_batch(images)")
    should = "For images of shape (3, 1, 28, 28) the result should have shape (3, 784); yours has"
    fail_if(tuple(out.shape) == (3 * 784,), f"{should} shape (2352,): everything, the batch dimension included, "
            "became one long row. Keep the first dimension: one row per image.")
    fail_if(tuple(out.shape) == (784, 3), f"{should} (784, 3). The batch dimension comes first: rows are images, "
            "columns are pixels.")
    expect_shape(out, (3, 784), "For images of shape (3, 1, 28, 28) the result")
    fail_if(not torch.equal(out, images.reshape(3, 784)), "The shape (3, 784) is right but the numbers are in the "
            "wrong places: row i must hold image i's pixels row by row. Row 0 should start "
            f"{numbers(images.reshape(3, 784)[0])}; yours starts {numbers(out[0])}.")
    one = tensor_result(fn(images[:1].clone()), "flatten_batch(one image)")
    fail_if(tuple(one.shape) != (1, 784), "For a batch of ONE image (1, 1, 28, 28) the result should have shape "
            f"(1, 784); yours has {tuple(one.shape)}. (squeeze() removes every dimension of size 1, the batch's too.)")


@exercise("01", "Each column needs its own mean, taken down its rows; an (F,) tensor broadcasts over the rows.",
          "mean() takes a dim: the one that runs down the rows (size N), so that the result has shape (F,). 01 "
          "section 4 shows broadcasting.")
def check_center_columns(fn):
    data = torch.tensor([[1.0, 10.0, 100.0], [3.0, 30.0, 300.0], [5.0, 20.0, 200.0], [7.0, 40.0, 0.0]])
    expected, out = data - data.mean(dim=0), tensor_result(fn(data.clone()), "center_columns(data)")
    expect_shape(out, (4, 3), "For data of shape (4, 3) the result")
    rows = f"Expected first row {numbers(expected[0])}, yours {numbers(out[0])}."
    verdict(out, expected, f"center_columns({data.tolist()}) should start with the row {numbers(expected[0])} "
            f"(column means {numbers(data.mean(dim=0))}); yours starts {numbers(out[0])}.",
            (data - data.mean(dim=1, keepdim=True), "You subtracted each ROW's mean (dim=1): the wrong dimension. A "
             "column's values run down the rows, so its mean is taken over dim=0; each column of the result should "
             "average to 0. " + rows),
            (data - data.mean(), "You subtracted one mean of ALL the numbers; each column needs its own mean "
             "(data.mean(dim=0), shape (3,) here). " + rows))


@exercise("01", "Each output: a weighted sum of the inputs plus its bias. Shapes: x (B, in), weight (out, in).",
          "For (B, in) @ (?, ?) to give (B, out), the weight must be turned around (.T); the bias (out,) then "
          "broadcasts over the B rows.")
def check_linear_forward(fn):
    g = generator(0)
    x, weight, bias = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    expected = x @ weight.T + bias
    out = tensor_result(fn(x, weight, bias), "linear_forward(x, weight, bias)")
    expect_shape(out, (5, 3), "For x (5, 4), weight (3, 4), bias (3,) the result", ": B = 5 rows of 3 outputs")
    verdict(out, expected, f"For x (5, 4), weight (3, 4), bias (3,) row 0 should be {numbers(expected[0])} "
            f"(= weight @ x[0] + bias); yours is {numbers(out[0])}.",
            (x @ weight.T, "The bias is missing: add it after the matrix multiplication (x @ weight.T + bias)."))


@exercise("01", "Let autograd do the calculus: make x a tensor that records its history, apply fn, ask for the slope.",
          "01 section 6: requires_grad=True when you make the tensor, backward() on the result, then read the "
          "tensor's .grad. One backward() only: gradients add up.")
def check_derivative(fn):
    cases = [("lambda t: t ** 2 + 3 * t", lambda t: t ** 2 + 3 * t, 2.0, 7.0, "2x + 3 = 7"),
             ("lambda t: t ** 2 + 3 * t", lambda t: t ** 2 + 3 * t, -1.5, 0.0, "2x + 3 = 0"),
             ("lambda t: t ** 3", lambda t: t ** 3, 2.0, 12.0, "3x^2 = 12"),
             ("torch.sin", torch.sin, 0.5, math.cos(0.5), f"cos(0.5) = {math.cos(0.5):.4f}"),
             ("torch.relu", torch.relu, -1.0, 0.0, "0: relu is flat for x < 0")]
    for text, f, x, expected, by_hand in cases:
        call = f"derivative({text}, {x})"
        got = float_result(fn(f, x), call)
        verdict(got, expected, f"{call} should be {expected:.4g} (by hand: {by_hand}); yours returned {got:.4g}.",
                (2 * expected if expected else math.nan, f"{call} returned {got:.4g}, exactly twice the derivative "
                 f"({by_hand}): backward() ran twice, and each call ADDS to .grad (01 section 6 shows it). Training "
                 "zeroes the gradients before each backward() for the same reason."),
                (float(f(torch.tensor(x))), f"{call} returned {got:.4g}, which is fn({x}) itself, not its slope. "
                 "Read the slope from t.grad after backward()."), same=near(1e-4))


@exercise("01", "exp() of each logit over the sum of its row's exps; subtracting a row's max changes nothing.",
          "Divide by the temperature into a NEW tensor (no -=, /=, exp_); each row's max with keepdim=True so it "
          "broadcasts; sum over dim=-1, keepdim=True (01 section 8).")
def check_softmax(fn):
    def ref(z, temperature=1.0):  # computed in float64: the reference itself cannot overflow
        return torch.softmax(z.double() / temperature, dim=-1).to(z.dtype)
    tol = {"same": near(1e-4)}
    logits = torch.tensor([2.0, 1.0, 0.1])
    out = tensor_result(fn(logits.clone()), "softmax(torch.tensor([2.0, 1.0, 0.1]))")
    expect_shape(out, (3,), "softmax(torch.tensor([2.0, 1.0, 0.1]))")
    verdict(out, ref(logits), f"softmax([2.0, 1.0, 0.1]) should be {numbers(ref(logits))} (01 "
            f"section 8); yours is {numbers(out)}.", **tol)
    batch = torch.randn(4, 5, generator=generator(0)) * 3
    out = tensor_result(fn(batch.clone()), "softmax(a batch of shape (4, 5))")
    expect_shape(out, (4, 5), "softmax(a batch of shape (4, 5))")
    verdict(out, ref(batch), "For a batch (4, 5) each of the 4 rows should sum to 1; in yours the whole "
            "batch sums to 1: the sum ran over every number at once. Sum over the last dimension only: sum(dim=-1, "
            "keepdim=True)." if abs(float(out.sum()) - 1) < 1e-3 else f"For a batch (4, 5) row 0 should be "
            f"{numbers(ref(batch)[0])} (each row on its own); yours is {numbers(out[0])}; your rows sum to "
            f"{numbers(out.sum(dim=-1))}.", (torch.softmax(batch, dim=0), "For a batch (4, 5) each ROW should sum "
            "to 1; in yours each COLUMN does: the sums run over the wrong dimension (dim=0). Normalise over the last "
            "one: sum(dim=-1, keepdim=True)."), **tol)
    cube = torch.randn(2, 3, 4, generator=generator(1))
    out = tensor_result(fn(cube.clone()), "softmax(a tensor of shape (2, 3, 4))")
    verdict(out, ref(cube), "For a tensor (2, 3, 4) the softmax should run over the LAST dimension (size "
            f"4); yours gives {describe(out)}. Use dim=-1 rather than a fixed dimension number.", **tol)
    big = torch.tensor([[1000.0, 0.0], [0.0, -1000.0]])
    out = tensor_result(fn(big.clone()), "softmax(torch.tensor([[1000., 0.], [0., -1000.]]))")
    wrong = f"softmax([[1000., 0.], [0., -1000.]]) should be [[1, 0], [1, 0]]; yours is {numbers(out)}."
    fail_if(not bool(torch.isfinite(out).all()), f"{wrong} exp(1000) overflows float32 to inf, and inf / inf is "
            "nan. Subtract each row's largest logit first: softmax(z - max) == softmax(z), and every exp() is then "
            "at most 1.")
    verdict(out, ref(big), f"{wrong} Subtract each row's own maximum (keepdim=True), not one maximum for "
            "the whole batch.", **tol)
    call = "softmax(torch.tensor([2.0, 1.0, 0.1]), temperature=2.0)"
    out = tensor_result(fn(logits.clone(), temperature=2.0), call)
    wrong = f"{call} should be {numbers(ref(logits, 2.0))}"
    verdict(out, ref(logits, 2.0), f"{wrong}; yours is {numbers(out)}.",
            (ref(logits * 2.0), f"{wrong} (flatter than T = 1); yours is {numbers(out)}, sharper: you "
             "multiplied the logits by the temperature. Divide: z / T."),
            (ref(logits), f"{wrong}; yours is {numbers(out)}, the same as with T = 1: the temperature is "
             "ignored. Divide the logits by it."), **tol)
    fn(given := torch.tensor([[3.0, 1.0, 0.0]]))
    fail_if(not torch.equal(given, torch.tensor([[3.0, 1.0, 0.0]])), "Your softmax changed the tensor it was given: "
            f"[[3., 1., 0.]] became {numbers(given)}. An in-place operation (-=, /=, exp_) writes into the caller's "
            "logits; use z = logits / T and z = z - ..., which make new tensors.")


# --- 02 Meet the data -------------------------------------------------------------------------------------------
@exercise("02", "Count how often each label occurs. A digit that never occurs still needs its entry: 0.",
          "torch.bincount counts for you; read about its minlength argument. Use num_classes, not a fixed 10.")
def check_class_counts(fn):
    labels, call = torch.tensor([3, 1, 3, 0, 7, 3, 1, 0]), "class_counts([3, 1, 3, 0, 7, 3, 1, 0])"
    expected, out = torch.bincount(labels, minlength=10), tensor_result(fn(labels.clone()), call)
    fail_if(tuple(out.shape) == (8,), f"{call} should have 10 entries, one per digit {expected.tolist()}; yours has "
            f"8 {out.tolist()}: digits 8 and 9 never occur, and a count that is 0 must still be there. (bincount "
            "needs minlength=num_classes.)")
    expect_shape(out, (10,), call, ": one count per digit 0-9")
    fail_if(out.is_floating_point(), f"Counts are whole numbers: return an integer tensor (int64); yours is "
            f"{out.dtype}.")
    fail_if(not torch.equal(out.long(), expected), f"{call} should be {expected.tolist()} (entry d counts the label "
            f"d); yours is {out.tolist()}.")
    call = "class_counts([4, 4, 0, 2], num_classes=5)"
    out = tensor_result(fn(torch.tensor([4, 4, 0, 2]), num_classes=5), call)
    fail_if(out.tolist() != [1, 0, 1, 0, 2], f"{call} should be [1, 0, 1, 0, 2]; yours is {describe(out)}. Use "
            "num_classes, not a fixed 10.")


def _uint8_images(n, seed, low=0, high=256):
    images = torch.randint(low, high, (n, 28, 28), generator=generator(seed)).to(torch.uint8)
    images[:, :, :8] = 0  # a black margin, as in MNIST: the mean is low
    return images


@exercise("02", "One mean and one std over every pixel of every image, in 0..1 units, as Python floats.",
          "uint8 cannot be averaged and 0..255 is not 0..1: convert to float and scale first (02 section 5); "
          ".mean() and .std() with no dim; .item() gives a Python float.")
def check_pixel_stats(fn):
    images = _uint8_images(6, 0)
    mean, std = (images.double() / 255).mean().item(), (images.double() / 255).std().item()
    got_mean, got_std = (float_result(v, "pixel_stats(images)'s mean and std")
                         for v in pair_result(fn(images.clone()), "pixel_stats(images)"))
    fail_if(abs(got_mean - 255 * mean) < 1e-2 * 255, f"pixel_stats gave a mean of {got_mean:.4g}: that is in 0..255 "
            f"units. Scale the pixels to 0..1 first (divide by 255): the mean should be {mean:.4f}.")
    fail_if(abs(got_mean - mean) > 1e-4 or abs(got_std - std) > 1e-4, f"For these 6 images the mean should be "
            f"{mean:.4f} and the std {std:.4f} (over every pixel, in 0..1 units); yours are {got_mean:.4f} and "
            f"{got_std:.4f}.")


@exercise("02", "Scale to 0..1, use the mean and std you are GIVEN (not these images' own), add a channel.",
          "Scale as in pixel_stats; unsqueeze adds a dimension of size 1: (N, 28, 28) -> (N, 1, 28, 28). The result "
          "must be float32.")
def check_normalize_images(fn):
    images, mean, std = _uint8_images(5, 1), 0.2, 0.4  # deliberately not these images' own statistics
    expected, own = ((images.float() / 255 - mean) / std).unsqueeze(1), images.float() / 255
    call = "normalize_images(images (5, 28, 28), mean=0.2, std=0.4)"
    out = tensor_result(fn(images.clone(), mean, std), call)
    fail_if(tuple(out.shape) == (5, 28, 28), f"{call} should have shape (5, 1, 28, 28); yours has (5, 28, 28): the "
            "colour channel is missing. Layers such as nn.Conv2d expect (batch, channels, height, width): "
            "unsqueeze(1).")
    expect_shape(out, (5, 1, 28, 28), call)
    fail_if(out.dtype != torch.float32, f"{call} should be float32, what the network computes in; yours is "
            f"{out.dtype}.")
    verdict(out, expected, f"A black pixel (0) should become (0 - 0.2) / 0.4 = -0.5; yours became "
            f"{out[0, 0, 0, 0].item():.4g}. Expected {numbers(expected[0, 0, 0, 8:])} for pixels 8.. of row 0; yours "
            f"{numbers(out[0, 0, 0, 8:])}.",
            (((own - own.mean()) / own.std()).unsqueeze(1), "You recomputed the mean and std from these images. Use "
             "the mean and std you are given: validation and test images (and your own digit in 04) must be "
             "normalised with the TRAINING statistics, the ones the model was trained with."),
            (((images.float() - mean) / std).unsqueeze(1), "The pixels were not scaled to 0..1 first: mean and std "
             "are in 0..1 units, so divide by 255 before subtracting the mean."), same=near(1e-4),
            like=near(1e-3))


@exercise("02", "Only the training images decide the statistics; all three splits are normalised with them.",
          "Compute the two statistics as in pixel_stats, on train only; then apply normalize_images' formula to each "
          "of the three splits.")
def check_normalize_splits(fn):
    splits = _uint8_images(6, 2, 0, 128), _uint8_images(3, 3, 0, 256), _uint8_images(4, 4, 64, 256)
    mean, std = (splits[0].double() / 255).mean().item(), (splits[0].double() / 255).std().item()
    everything = torch.cat(splits).double() / 255
    outs = pair_result(fn(*(split.clone() for split in splits)), "normalize_splits(train, val, test)", 3)
    for i, name in ((0, "training"), (2, "test"), (1, "validation")):  # the test split's statistics: the classic leak
        own, out = splits[i].float() / 255, tensor_result(outs[i], f"normalize_splits's {name} result")
        want = ((own - mean) / std).unsqueeze(1)
        expect_shape(out, want.shape, f"The {name} result")
        verdict(out, want, f"The {name} result differs from (pixel / 255 - {mean:.4f}) / {std:.4f} (the training "
                f"split's mean and std): expected {numbers(want[0, 0, 0, 8:])} for pixels 8.. of its first row, "
                f"yours {numbers(out[0, 0, 0, 8:])}.",
                (((own - own.mean()) / own.std()).unsqueeze(1) if i else None, f"The {name} images were normalised "
                 f"with their own mean and std: normalisation statistics from the {name} set. Compute mean and std on "
                 "the training images only and use those for all three splits: the test set must not influence "
                 "anything you use, not even a mean, and the model must see every split exactly as it saw the "
                 "training data."),
                (((own - everything.mean().item()) / everything.std().item()).unsqueeze(1), "Your mean and std were "
                 "computed on all the images together: the validation and test images leaked into the statistics. "
                 "Use the training images only."), same=near(1e-3))


@exercise("02", "ONE random order of all N examples, cut into pieces of batch_size (keep the last, short one).",
          "torch.randperm gives a permutation (pass the generator); range(0, N, batch_size) gives each piece's start; "
          "index images AND labels with the same piece.")
def check_shuffled_batches(fn):
    n, size = 23, 5
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).repeat(1, 1, 2, 2)  # image i is all i
    labels, call = torch.arange(n) + 100, f"shuffled_batches({n} images, {n} labels, batch_size={size})"  # i -> i + 100
    result = fn(images.clone(), labels.clone(), size, generator(0))
    try:
        batches = [pair_result(batch, f"Batch {i}") for i, batch in enumerate(result)]
    except TypeError:
        raise Fail(f"{call} should return a list of (images, labels) pairs; yours returned {describe(result)}.") from None
    sizes = [len(tensor_result(b[1], f"Batch {i}")) for i, b in enumerate(batches)]
    fail_if(sizes == [size] * (n // size), f"{call} should give {math.ceil(n / size)} batches of sizes "
            f"{[5, 5, 5, 5, 3]}; yours gives {len(batches)} of sizes {sizes}: the last, partial batch is missing, so "
            "3 examples are never trained on. (55,000 MNIST images in batches of 64, 03's size, make 860 batches, "
            "the last one of 24.)")
    fail_if(sizes != [5, 5, 5, 5, 3], f"{call} should give batches of sizes [5, 5, 5, 5, 3]; yours gives sizes "
            f"{sizes}.")
    ids = torch.cat([tensor_result(b[0], f"Batch {i}")[:, 0, 0, 0] for i, b in enumerate(batches)]).long()
    tags = torch.cat([b[1] for b in batches])
    fail_if(sorted(ids.tolist()) != list(range(n)), f"Every example should appear exactly once per epoch; in yours, "
            f"{n - len(set(ids.tolist()))} never appear and others appear twice: random indices were drawn with "
            "replacement. Shuffle with a permutation, torch.randperm(N), instead.")
    fail_if(not torch.equal(ids + 100, tags), "The images and labels are no longer pairs: image i should come with "
            f"label i + 100, but in your first batch the images {ids[:5].tolist()} came with the labels "
            f"{tags[:5].tolist()}. Images and labels were shuffled with two different orders, so every label now "
            "belongs to another image. Draw ONE order and index both with it.")
    fail_if(ids.tolist() == list(range(n)), "Your batches are not shuffled: the examples come in their original "
            "order. Each epoch should see them in a new random order (torch.randperm(N, generator=generator)).")


# --- 03 Train your first network --------------------------------------------------------------------------------
@exercise("03", "Linear(a, b) holds a * b weights and b biases; add that up over the layers.",
          "The layers are the pairs of neighbouring sizes (784, 128) and (128, 10): zip(sizes[:-1], sizes[1:]) "
          "gives them. Return an int.")
def check_count_linear_parameters(fn):
    for sizes, expected in (([784, 128, 10], 101_770), ([784, 256, 128, 10], 235_146), ([784, 2, 10], 1_600),
                            ([3, 5], 20)):
        got, call, layers = fn(list(sizes)), f"count_linear_parameters({sizes})", list(zip(sizes[:-1], sizes[1:]))
        fail_if(isinstance(got, float) and got == expected, f"{call} returned the float {got}; a count is a whole "
                "number: return an int.")
        fail_if(isinstance(got, bool) or not isinstance(got, int), f"{call} should return an int ({expected:,}); "
                f"yours returned {describe(got)}.")
        weights = sum(a * b for a, b in layers)
        verdict(got, expected, f"{call} should be {expected:,}: " + " + ".join(f"({a} * {b} + {b})" for a, b in layers)
                + f"; yours is {got:,}.", (weights, f"{call} should be {expected:,}; yours is {got:,}, the weights "
                f"alone: the biases are missing (one per output neuron of each layer, {expected - weights:,} here)."))


@exercise("03", "Flatten, a Linear layer to `hidden` neurons, a non-linearity, a Linear layer to 10 logits.",
          "nn.Sequential chains layers (or write a class like 03's SimpleNN, section 1). No softmax at the end: "
          "nn.CrossEntropyLoss applies it.")
def check_build_simple_nn(fn):
    torch.manual_seed(0)
    for hidden, parameters in ((128, 101_770), (32, 25_450)):
        check_network(fn(hidden), call=f"build_simple_nn({hidden})", parameters=parameters,
                      formula=f"(784 * {hidden} + {hidden}) + ({hidden} * 10 + 10)")


@exercise("03", "A row's prediction is the class of its highest logit; accuracy: the fraction equal to the labels.",
          "argmax over the class dimension (dim=1); == gives booleans; as floats their mean is the fraction; .item() "
          "makes it a Python float.")
def check_accuracy(fn):
    g, call = generator(0), "accuracy(logits (10, 10), labels (10,))"
    logits = torch.randn(10, 10, generator=g)
    labels = logits.argmax(dim=1)
    labels[[1, 4, 7]] = (labels[[1, 4, 7]] + 1) % 10  # 7 of 10 right
    got = float_result(fn(logits.clone(), labels.clone()), call)
    verdict(got, 0.7, f"{call} with 7 of 10 right should be 0.7; yours returned {got:g}.",
            (70, f"{call} with 7 of 10 right should be 0.7, a fraction; yours returned {got:g}, a percentage."),
            (7, f"{call} with 7 of 10 right should be 0.7; yours returned {got:g}, the count. Divide by the number of "
             "examples."),
            ((logits.argmax(dim=0) == labels).float().mean().item(), f"{call} should be 0.7; yours returned {got:g}: "
             "the argmax ran over dim=0, down the columns (the best example for each class). Each ROW is one "
             "example: argmax(dim=1) is its prediction."), same=near(1e-6), like=near(1e-4))
    rect = torch.randn(7, 3, generator=g)
    rect_labels = rect.argmax(dim=1)
    rect_labels[0] = (rect_labels[0] + 1) % 3  # 6 of 7
    got = float_result(fn(rect, rect_labels), "accuracy(logits (7, 3), labels (7,))")
    fail_if(abs(got - 6 / 7) > 1e-6, f"accuracy(logits (7, 3), labels (7,)) with 6 of 7 right should be "
            f"{6 / 7:.4f}; yours returned {got:.4g}.")


@exercise("03", "Minus the log-probability of the true class, averaged over the batch; stay in log space.",
          "log softmax(z) = z - log(sum(exp(z))) per row, and subtracting the row's max first keeps exp() finite; "
          "tensor[torch.arange(B), labels] picks one entry per row.")
def check_cross_entropy(fn):
    g, call = generator(0), "cross_entropy(logits (6, 4), labels (6,))"
    logits, labels = torch.randn(6, 4, generator=g) * 2, torch.randint(0, 4, (6,), generator=g)
    expected = F.cross_entropy(logits, labels).item()
    got = float_result(fn(logits.clone(), labels.clone()), call)
    verdict(got, expected, f"{call} should be {expected:.4f} (what nn.CrossEntropyLoss gives); yours is {got:.4f}.",
            (6 * expected, f"{call} should be {expected:.4f}, the MEAN over the 6 examples; yours is {got:.4f}, their "
             "sum. (nn.CrossEntropyLoss averages, so the loss does not grow with the batch size.)"),
            (-expected, f"{call} should be {expected:.4f}; yours is {got:.4f}: the sign. The loss is MINUS the "
             "log-probability of the true class, so it is positive and 0 only for a sure, right answer."),
            same=near(1e-4), like=near(1e-3))
    call = "cross_entropy([[1000., 0., -1000.], [0., 1000., 0.]], labels [0, 0])"
    got = float_result(fn(torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]]), torch.tensor([0, 0])), call)
    fail_if(not math.isfinite(got), f"{call} should be 500 (0 for the first, sure and right; 1000 for the second); "
            f"yours is {got}. softmax gives exactly 0 in float32 for a logit 1000 below the top one, and log(0) = "
            "-inf; or exp(1000) overflowed. Work in log space: z - max - log(sum(exp(z - max))).")
    fail_if(abs(got - 500) > 1e-2, f"{call} should be 500; yours is {got:.4g}.")


def tiny_net() -> nn.Sequential:
    """4 inputs -> 6 -> ReLU -> 3 classes; its last layer, a Recorder, notes the mode at every forward pass."""
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), Recorder())


def _train_variant(state, loader, order: str, lr: float):
    """Train a tiny_net from `state` for one epoch with the steps in `order` (Z zero_grad, F forward, L loss,
    B backward, S step: "ZFLBS" is right); returns (weights, batch losses, batch sizes)."""
    model, losses, sizes = tiny_net(), [], []
    model.load_state_dict(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for images, labels in loader:
        run = {}  # what the steps so far produced: the logits, the loss
        steps = {"Z": optimizer.zero_grad, "F": lambda: run.update(logits=model(images)), "S": optimizer.step,
                 "L": lambda: run.update(loss=F.cross_entropy(run["logits"], labels)),
                 "B": lambda: run["loss"].backward()}
        for step in order:
            steps[step]()
        losses.append(run["loss"].item())
        sizes.append(len(labels))
    return [p.detach().clone() for p in model.parameters()], losses, sizes


@exercise("03", "Training mode, then the same five steps for every batch in a fixed order (03 section 2).",
          "Clear the old gradients at the START of each batch, compute the new ones, then let the optimizer step. "
          "Return the mean loss per IMAGE: each batch's loss (a plain number, .item()) times its size, over the "
          "images seen.")
def check_train_one_epoch(fn):
    torch.manual_seed(0)
    model, loader, lr = tiny_net(), tiny_loader(), 0.5
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
    fail_if(isinstance(result, torch.Tensor) and result.requires_grad, f"{call} returned a tensor that still carries "
            "its computation graph: a running total built with `total += loss` keeps the graph of every batch in "
            "memory. Add loss.item() * len(labels), a plain number, and return a float.")
    got, modes = float_result(result, call), model[-1].modes
    fail_if(len(modes) != len(loader), f"The model should see each of the {len(loader)} batches once (one forward "
            f"pass each); in your epoch it ran {len(modes)} forward passes.")
    fail_if(not all(modes), "The model was in evaluation mode while it trained: model.train() is missing. 03 "
            "evaluates after every epoch (which switches to model.eval()), so from the second epoch on dropout and "
            "batch norm would behave as at test time. Call model.train() at the start of the epoch.")
    weights, (right, losses, sizes) = list(model.parameters()), _train_variant(state, loader, "ZFLBS", lr)
    if not all(map(close, weights, right)):
        fail_if(all(map(close, weights, state.values())), "After your epoch the weights are exactly where they "
                "started: optimizer.step() never found a gradient. Either optimizer.zero_grad() runs between "
                "loss.backward() and optimizer.step() (it wipes the gradients step needs), or step() runs before "
                "backward(). The order is: zero_grad, forward, loss, backward, step.")
        for order, message in {
            "FLBS": "the gradients are never zeroed, so they accumulate: each step used the sum of the gradients of "
                    "every batch so far. Start each batch with optimizer.zero_grad() (step 1).",
            "ZFLSB": "optimizer.step() runs before loss.backward(): each step found no gradients yet (zero_grad "
                     "had cleared them), so the weights never moved. The order is zero_grad, forward, loss, "
                     "backward, step.",
            "FLBZS": "optimizer.zero_grad() runs after loss.backward() and before optimizer.step(): it wipes the "
                     "gradients that step() needs, so the weights never moved. Zero them at the START of each batch.",
        }.items():
            fail_if(all(map(close, weights, _train_variant(state, loader, order, lr)[0])), "The weights after your "
                    "epoch are not what the five steps give: " + message)
        raise Fail("The weights after your epoch differ from the reference loop's (same start, same batches, "
                   f"SGD lr {lr}): its first weight row is {numbers(right[0][0])}, yours {numbers(weights[0][0])}. "
                   "Each batch needs exactly zero_grad, forward, loss, backward, step, in that order, once.")
    total = sum(loss * size for loss, size in zip(losses, sizes))
    mean, said = total / sum(sizes), f"The weights are right, but the returned loss {got:.4f} is"
    verdict(got, mean, f"The weights are right, but the returned loss should be {mean:.4f}, the mean loss per image "
            f"over the epoch (batch losses {numbers(torch.tensor(losses))} for {sizes} images); yours is {got:.4f}.",
            *((value, f"{said} {message}. The mean loss per image over the epoch is {mean:.4f}.")
              for value, message in (
                (losses[-1], "the LAST batch's loss, not the epoch's: keep a running total over all batches"),
                (sum(losses) / len(losses), "the mean of the batch means: the last batch holds 2 images but counts as "
                 "much as a full one. Weight each batch's loss by its number of images (loss.item() * len(labels)), "
                 "then divide by the images seen"),
                (sum(losses), "the sum of the batch losses: divide by the number of images seen"),
                (total / len(losses), "the total divided by the number of batches; divide by the number of images"),
                (total, "the sum over all images, not divided by their number"))), same=near(1e-5))


@exercise("03", "Evaluation mode, no graph recorded, and the correct answers counted over ALL batches, then divided.",
          "The model's .eval() switch, and torch.no_grad() as a `with` block (04 section 3); two running counts "
          "(correct answers, images), one division at the end: the last batch is smaller.")
def check_evaluate(fn):
    torch.manual_seed(0)
    images, call = tiny_loader().images, "evaluate(model, loader of 17 images in batches of 5, 5, 5, 2)"
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5), recorder := Recorder())
    with torch.no_grad():
        labels = model.eval()(images).argmax(dim=1)
    labels[[0, 1, 2, 5, 6, 10]] = (labels[[0, 1, 2, 5, 6, 10]] + 1) % 3  # 11 of 17 right: 2/5, 3/5, 4/5, 2/2
    recorder.forget()
    model.train()  # as training left it
    got = float_result(fn(model, dl_utils.InMemoryLoader(images, labels, batch_size=5, shuffle=False)), call)
    fail_if(not recorder.modes, f"{call} never ran the model.")
    fail_if(any(recorder.modes), "The model was still in training mode while you evaluated it: model.eval() is "
            "missing. Dropout was switching half the neurons off at random, so the accuracy is lower than it should "
            "be and changes from run to run (04 section 3).")
    fail_if(any(recorder.grad_enabled), "The evaluation ran with autograd recording: torch.no_grad() is missing. "
            "Without it every forward pass keeps its graph for a backward() that never comes: more memory, slower, "
            "for nothing. Wrap the loop in `with torch.no_grad():`.")
    verdict(got, 11 / 17, f"{call} with 11 of 17 right should be {11 / 17:.4f}; yours is {got:.4f}.",
            ((0.4 + 0.6 + 0.8 + 1.0) / 4, f"{call} should be 11 / 17 = {11 / 17:.4f}; yours is {got:.4f}, the mean "
             "of the batch accuracies: the last batch holds 2 images but counted as much as a full one. Count "
             "correct answers and images over all batches, then divide."),
            (100 * 11 / 17, f"{call} should be {11 / 17:.4f}, a fraction; yours is {got:.4g}, a percentage."),
            same=near(1e-6), like=near(1e-3))


@exercise("03", "Patience counts the epochs since the BEST loss so far, not the previous one; equal is no gain.",
          "Find the position of the lowest loss (the first one if several are equal) and count the epochs after it; "
          "compare that count with patience. No epochs yet: never stop.")
def check_should_stop(fn):
    notes = {(1.0, 0.8, 0.9, 0.85, 0.87): "; 0.85 was better than the epoch before it, but not better than the "
             "best, 0.8, so it does not count: compare with the BEST loss, not the previous one",
             (1.0, 0.9, 0.9, 0.9, 0.9): "; an equal loss is no improvement (03's epoch loop uses <)"}
    for losses, patience, expected in [([], 2, False), ([1.0], 1, False), ([1.0, 0.9], 1, False),
                                       ([1.0, 0.9, 0.95], 1, True), ([1.0, 0.9, 0.95], 2, False),
                                       ([1.0, 0.9, 0.95, 0.96], 2, True), ([1.0, 0.8, 0.9, 0.85, 0.87], 3, True),
                                       ([1.0, 0.9, 0.9, 0.9, 0.9], 3, True), ([0.5, 0.6, 0.4, 0.45], 2, False)]:
        call, got = f"should_stop({losses}, patience={patience})", fn(list(losses), patience)
        fail_if(not isinstance(got, (bool, torch.Tensor)) and got not in (0, 1), f"{call} should return True or "
                f"False; yours returned {describe(got)}.")
        if bool(got) != expected:
            fail_if(not losses, f"{call} should be False: no epoch yet, nothing to stop.")
            best = min(range(len(losses)), key=losses.__getitem__)
            since = len(losses) - 1 - best
            raise Fail(f"{call} should be {expected}: the lowest loss, {losses[best]}, came at epoch {best + 1}, "
                       f"{since} epoch{'s' if since != 1 else ''} before the last{notes.get(tuple(losses), '')}; yours "
                       f"returned {bool(got)}.")


@exercise("03", "Forward pass keeping each intermediate, then the chain rule from the loss back to W2 and W1.",
          "Mean cross-entropy: d loss / d logits = (softmax - one_hot) / B. For y = x @ W.T + b: d_W = d_y.T @ x, d_b "
          "= d_y summed over the batch, d_x = d_y @ W. The ReLU passes the gradient only where its input was > 0.")
def check_backprop_by_hand(fn):
    def autograd_gradients(relu_grad=True):  # the reference; without relu_grad, a ReLU whose mask is forgotten
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        pre = x @ leaves["W1"].T + leaves["b1"]
        h = torch.relu(pre) if relu_grad else pre.clamp(min=0).detach() + pre - pre.detach()
        F.cross_entropy(h @ leaves["W2"].T + leaves["b2"], labels).backward()
        return {k: v.grad for k, v in leaves.items()}
    g = generator(0)
    x, labels = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g)
    shapes = {"W1": (4, 6), "b1": (4,), "W2": (3, 4), "b2": (3,)}  # B, D, H, C = 5, 6, 4, 3
    params = {k: torch.randn(*shape, generator=g, dtype=torch.float64) for k, shape in shapes.items()}
    expected, no_relu = autograd_gradients(), autograd_gradients(relu_grad=False)
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
    fail_if(not isinstance(got, dict) or sorted(got) != ["W1", "W2", "b1", "b2"], f"{call} should return a dict with "
            f"the keys 'W1', 'b1', 'W2', 'b2'; yours returned {describe(got)}.")
    for name in ("b2", "W2", "b1", "W1"):  # in backpropagation's order: from the loss backwards
        value = tensor_result(got[name], f"The gradient {name!r}")
        expect_shape(value, expected[name].shape, f"The gradient {name!r}", f", the shape of {name} itself")
        later = [n for n in ("b2", "W2") if name in ("b1", "W1") and close(got[n], expected[n], 1e-6)]
        note = (f" ({' and '.join(later)} {'are' if len(later) > 1 else 'is'} right, so the mistake lies between "
                "the logits and the first layer)") if later else ""
        verdict(value, expected[name], f"Your d loss / d {name} differs from autograd's{note}: autograd says "
                f"{numbers(expected[name])}, yours is {numbers(value)}.",
                (expected[name] * len(labels), f"Your gradient for {name} is exactly {len(labels)} times autograd's, "
                 "the batch size: the loss is the MEAN over the batch, so d loss / d logits is (softmax - one_hot) / "
                 "B."),
                (no_relu[name] if name in ("W1", "b1") else None, f"Your gradient for {name} ignores the ReLU: its "
                 "derivative is 1 where its input was positive and 0 elsewhere, so multiply d_h by (pre > 0) before "
                 "going on to W1 and b1."), same=near(1e-6))


# --- 04 Load and use a model ------------------------------------------------------------------------------------
@exercise("04", "A state_dict holds the weights, and their shapes give the layer sizes away.",
          "nn.Linear stores its weight as (out_features, in_features): look at the shape of "
          "state_dict['fc1.weight'] (04 sections 2 and 4).")
def check_hidden_size_from_checkpoint(fn):
    for hidden, batch_norm in ((128, False), (32, False), (7, True)):
        state = dl_utils.SimpleNN(hidden=hidden, batch_norm=batch_norm).state_dict()  # 03's model, harvested
        call = f"hidden_size_from_checkpoint(the state_dict of SimpleNN(hidden={hidden}))"
        got = fn(state)
        got = int(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        shape = f"fc1.weight has shape {tuple(state['fc1.weight'].shape)}"
        verdict(got, hidden, f"{call} should be {hidden}; yours is {describe(got)}. Its {shape}.", (784, f"{call} "
                f"should be {hidden}; yours is 784, the number of inputs. {shape}: nn.Linear stores (out_features, "
                "in_features)."))


@exercise("04", "Softmax each row; the prediction is the most probable class, the confidence its probability.",
          "torch.softmax over dim=1; then .max(dim=1) returns two things at once: the values and their indices.")
def check_logits_to_prediction(fn):
    logits, call = torch.randn(5, 4, generator=generator(0)) * 3, "logits_to_prediction(logits (5, 4))"
    want_conf, want_pred = torch.softmax(logits, dim=1).max(dim=1)
    pred, conf = pair_result(fn(logits.clone()), call)
    pred, conf = tensor_result(pred, f"{call}'s predictions"), tensor_result(conf, f"{call}'s confidences")
    expect_shape(pred, (5,), f"{call}'s predictions", ": one class per example")
    expect_shape(conf, (5,), f"{call}'s confidences")
    fail_if(pred.is_floating_point() or not torch.equal(pred.long(), want_pred), "The predictions should be the "
            f"classes {want_pred.tolist()} (int64, the argmax of each row); yours are {describe(pred)}.")
    columns = torch.softmax(logits, dim=0)
    wrong_dim = (f"Your confidences {numbers(conf)} come from a softmax over the wrong dimension (dim=0, across the "
                 "examples). Each ROW (one example's scores) should sum to 1: softmax(logits, dim=1).")
    verdict(conf, want_conf, f"The confidences should be {numbers(want_conf)} (each row's largest softmax "
            f"probability); yours are {numbers(conf)}.",
            (logits.max(dim=1).values, f"Your confidences {numbers(conf)} are the largest raw logits, not "
             f"probabilities. Apply softmax first: the confidences should be {numbers(want_conf)}, each between 0 "
             "and 1."),
            (columns.gather(1, want_pred[:, None])[:, 0], wrong_dim), (columns.max(dim=1).values, wrong_dim))


@exercise("04", "Inference: evaluation mode, no recording, then what logits_to_prediction does.",
          "Its .eval() switch (dropout off), and torch.no_grad() as a `with` block around the forward pass (04 "
          "section 3).")
def check_predict(fn):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3),
                          recorder := Recorder())
    images, call = torch.randn(8, 1, 2, 2, generator=generator(1)), "predict(model, images (8, 1, 2, 2))"
    with torch.no_grad():
        want_conf, want_pred = torch.softmax(model.eval()(images), dim=1).max(dim=1)
    recorder.forget()
    model.train()  # as training left it
    pred, conf = pair_result(fn(model, images.clone()), call)
    fail_if(any(recorder.modes), "The model was still in training mode: model.eval() is missing, so dropout switched "
            "neurons off at random and the same digit could get a different answer every time you ask.")
    fail_if(any(recorder.grad_enabled), "The model ran with autograd recording: torch.no_grad() is missing. "
            "Inference needs no graph for backward(); without no_grad it is kept anyway (memory, time).")
    pred, conf = tensor_result(pred, f"{call}'s predictions"), tensor_result(conf, f"{call}'s confidences")
    fail_if(pred.is_floating_point() or tuple(pred.shape) != (8,) or not torch.equal(pred.long(), want_pred),
            f"The predictions should be {want_pred.tolist()}; yours are {describe(pred)}.")
    fail_if(not close(conf, want_conf, 1e-5), f"The confidences should be {numbers(want_conf)} (softmax "
            f"probabilities); yours are {describe(conf)}.")


@exercise("04", "Save only the weights, build a fresh model with make_model(), pour the saved weights in.",
          "04 section 7: torch.save a model's state_dict(); torch.load with weights_only=True; load_state_dict on the "
          "new model, which you return.")
def check_save_and_reload(fn):
    def small_model(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model, x = small_model(0), torch.randn(5, 3, generator=generator(3))
    with tempfile.TemporaryDirectory() as folder:
        fresh = fn(model, lambda: small_model(1), path := Path(folder) / "model.pth")
        fail_if(fresh is model, "save_and_reload returned the very model it was given: nothing was loaded. Build a "
                "new one with make_model() and load the saved weights into it.")
        fail_if(not isinstance(fresh, nn.Module), f"save_and_reload should return the new nn.Module; yours returned "
                f"{describe(fresh)}.")
        fail_if(not path.is_file(), f"Nothing was saved at the path you were given ({path.name}): "
                "torch.save(model.state_dict(), path).")
        try:
            saved = torch.load(path, weights_only=True)
        except Exception:  # UnpicklingError: a whole pickled model
            raise Fail("The file holds the whole model object (torch.save(model)), which torch.load(..., "
                       "weights_only=True) refuses, as it should: a pickled object can run code when loaded. "
                       "Save the state_dict instead: torch.save(model.state_dict(), path). (04 section 7)") from None
        fail_if(not isinstance(saved, dict) or sorted(saved) != sorted(model.state_dict()), "The saved file should "
                f"hold the model's state_dict (keys {sorted(model.state_dict())}); it holds {describe(saved)}.")
    with torch.no_grad():
        fail_if(not close(fresh(x), model(x)), "The new model does not compute what the saved one does: its weights "
                "are still the random ones make_model() gave it. Pour the saved weights in with load_state_dict.")


@exercise("04", "A row's confidence is its LARGEST probability; you want the k least confident, least sure first.",
          ".max(dim=1).values gives each row's confidence; argsort() sorts positions by value, ascending.")
def check_least_confident(fn):
    probs = torch.tensor([[0.90, 0.05, 0.05], [0.30, 0.40, 0.30], [0.005, 0.99, 0.005], [0.10, 0.35, 0.55],
                          [0.33, 0.32, 0.35], [0.15, 0.15, 0.70], [0.50, 0.45, 0.05], [0.03, 0.02, 0.95]])
    call, expected, got = "least_confident(probabilities (8, 3), k=3)", [4, 1, 6], fn(probs.clone(), 3)
    got = (torch.as_tensor(got) if isinstance(got, (list, tuple)) else tensor_result(got, call)).tolist()
    smallest = f"{call} should be {expected}; yours is {got}: you sorted by each row's SMALLEST probability. A " \
               "model's confidence is its largest probability (the one of its prediction)."
    verdict(got, expected, f"{call} should be {expected}: the rows with the confidences 0.35, 0.4 and 0.5, least "
            f"sure first; yours is {got}.",
            ([2, 7, 0], f"{call} should be {expected} (confidences 0.35, 0.4, 0.5); yours is {got}, the MOST "
             "confident rows. Sort ascending: argsort() without descending=True."),
            (probs.min(dim=1).values.argsort()[:3].tolist(), smallest),
            (probs.min(dim=1).values.argsort(descending=True)[:3].tolist(), smallest))


# --- 05 An honest experiment ------------------------------------------------------------------------------------
@exercise("05", "build_simple_nn with one more hidden layer: 784 -> 256 -> 128 -> 10, an activation after each.",
          "Three nn.Linear layers and two nn.ReLU() in an nn.Sequential, after nn.Flatten(). Check your count with "
          "count_linear_parameters([784, 256, 128, 10]).")
def check_three_layer_nn(fn):
    torch.manual_seed(0)
    check_network(fn(), call="three_layer_nn()", parameters=235_146,
                  formula="(784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10) = 200,960 + 32,896 + 1,290")


@exercise("05", "Write the two layers as one formula, W2 (W1 x + b1) + b2, and multiply it out.",
          "The part that multiplies x is W, everything else is b; b1 goes through W2 as well. W has the shape of "
          "a Linear weight: (outputs, inputs).")
def check_collapse_linear(fn):
    g, call = generator(0), "collapse_linear(W1 (5, 7), b1 (5,), W2 (3, 5), b2 (3,))"
    W1, b1, W2, b2 = (torch.randn(*shape, generator=g) for shape in ((5, 7), (5,), (3, 5), (3,)))
    W, b = pair_result(fn(W1, b1, W2, b2), call)
    W, b = tensor_result(W, f"{call}'s W"), tensor_result(b, f"{call}'s b")
    fail_if(tuple(W.shape) == (7, 3), f"{call}'s W should have shape (3, 7), (outputs, inputs) like every nn.Linear "
            "weight; yours is (7, 3), transposed: W = W2 @ W1.")
    expect_shape(W, (3, 7), f"{call}'s W")
    expect_shape(b, (3,), f"{call}'s b")
    x = torch.randn(4, 7, generator=g)
    want, yours = (x @ W1.T + b1) @ W2.T + b2, x @ W.T + b
    verdict(yours, want, f"x @ W.T + b should equal the two layers' output for every x; for one x the layers give "
            f"{numbers(want[0])}, yours {numbers(yours[0])}.", (x @ (W2 @ W1).T + b2, "W is right but b is only b2: "
            "the first layer's bias goes through W2 too. W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)."),
            same=near(1e-4))


@exercise("05", "Choose with the validation accuracy; the test accuracy is only reported, for the run you chose.",
          "Python's max() takes a key function: one that reads each run's 'val_accuracy'.")
def check_best_run(fn):
    runs = [{"name": "dropout", "val_accuracy": 0.970, "test_accuracy": 0.981},
            {"name": "wider", "val_accuracy": 0.981, "test_accuracy": 0.975},
            {"name": "baseline", "val_accuracy": 0.975, "test_accuracy": 0.978}]
    got = fn([dict(run) for run in runs])
    fail_if(not isinstance(got, dict), f"best_run should return the chosen run's dict; yours returned {describe(got)}.")
    verdict(got.get("name"), "wider", f"best_run should pick 'wider' (validation accuracy 0.981, the highest); yours "
            f"picked {got!r}.", ("dropout", "You chose the run with the best TEST accuracy (0.981). Choosing by it "
            "makes the test set part of your tuning, so its score is no longer an honest estimate for new digits. "
            "Choose by validation accuracy ('wider', 0.981), and report that run's test accuracy."))
    second = fn([dict(runs[2]), dict(runs[0])])
    fail_if(not isinstance(second, dict) or second.get("name") != "baseline", "best_run([baseline (val 0.975), "
            f"dropout (val 0.970)]) should pick 'baseline'; yours picked {describe(second)}.")


@exercise("05", "A gap counts only when it is larger than twice its noise: how much the seeds spread.",
          "A mean of n seeds wobbles by stdev / sqrt(n) (statistics.stdev, which divides by n - 1); the noise of a "
          "difference adds the two VARIANCES, then takes the square root.")
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
        got, gap = fn(list(a), list(b)), statistics.mean(a) - statistics.mean(b)
        noise = math.sqrt(statistics.stdev(a) ** 2 / len(a) + statistics.stdev(b) ** 2 / len(b))
        fail_if(got != expected, f"compare_with_noise({a}, {b}) should be {expected!r}: the gap is {gap:+.4f} and "
                f"twice its noise is {2 * noise:.4f}; yours returned {got!r}.{note}")


# --- 06 Convolutional networks ----------------------------------------------------------------------------------
@exercise("06", "Count the positions a kernel can take on the padded input, moving stride pixels at a time.",
          "Padding goes on BOTH sides; the first position counts too; a filter cannot sit at a fractional "
          "position, so use floor division // (06 section 3).")
def check_conv_output_size(fn):
    cases = [((28, 3, 1, 1), 28), ((28, 3, 0, 1), 26), ((28, 2, 0, 2), 14), ((14, 2, 0, 2), 7),
             ((28, 5, 2, 2), 14), ((7, 3, 0, 2), 3), ((29, 2, 0, 2), 14)]
    for (size, kernel, padding, stride), expected in cases:
        call = f"conv_output_size({size}, kernel={kernel}, padding={padding}, stride={stride})"
        got = fn(size, kernel, padding=padding, stride=stride)
        fail_if(isinstance(got, float), f"{call} should be the int {expected}; yours returned the float {got}: use "
                "floor division // (a filter cannot sit at a fractional position).")
        verdict(got, expected, f"{call} should be {expected}; yours is {describe(got)}.",
                ((size + padding - kernel) // stride + 1, f"{call} should be {expected}; yours is {got}: padding is "
                 "added on BOTH sides, so the padded width is size + 2 * padding."),
                (size + 2 * padding - kernel + 1, f"{call} should be {expected}; yours is {got}: the stride is "
                 "missing. With stride 2 the filter jumps 2 pixels at a time, so divide (// stride) before adding 1."),
                same=lambda a, b: type(a) is int and a == b, like=lambda a, b: a == b)


@exercise("06", "Count one filter's parameters, then multiply by the number of filters (out_channels).",
          "A filter has a kernel x kernel window for EACH input channel, plus one bias.")
def check_conv_parameters(fn):
    for (cin, cout, k), expected in (((1, 32, 3), 320), ((32, 64, 3), 18_496), ((3, 8, 5), 608)):
        call, got = f"conv_parameters({cin}, {cout}, {k})", fn(cin, cout, k)
        yours = f"{call} should be {expected:,}; yours is {got:,}" if isinstance(got, (int, float)) else ""
        verdict(got, expected, f"{call} should be {expected:,} = {cout} * ({cin} * {k} * {k}) + {cout}; yours is "
                f"{describe(got)}.", (cout * cin * k * k, f"{yours}: the biases are missing, one per filter ({cout} "
                "here)."), (cout * k * k + cout if cin > 1 else math.nan, f"{yours}: each filter has {k} x {k} "
                f"weights for EACH of the {cin} input channels, not for one."),
                same=lambda a, b: not isinstance(a, bool) and a == b)


@exercise("06", "Cut each (H, W) image into 2 x 2 blocks and keep each block's largest value.",
          "A reshape can split H into (H // 2, 2) and W into (W // 2, 2), so each block sits on two axes of size "
          "2; amax() takes a tuple of dims.")
def check_max_pool_2x2(fn):
    x, call = torch.randn(2, 3, 4, 6, generator=generator(0)), "max_pool_2x2(x (2, 3, 4, 6))"
    expected, out = F.max_pool2d(x, 2), tensor_result(fn(x.clone()), call)
    expect_shape(out, (2, 3, 2, 3), call, ": half the height and half the width")
    verdict(out, expected, f"out[0, 0, 0, 0] should be the max of x[0, 0, 0:2, 0:2] = {numbers(x[0, 0, :2, :2])}, "
            f"i.e. {expected[0, 0, 0, 0].item():.4f}; yours is {out[0, 0, 0, 0].item():.4f}. Check which numbers end "
            "up in one block after your reshape.", (F.avg_pool2d(x, 2), "Your pooling averages each 2 x 2 block; max "
            "pooling keeps its LARGEST value (06 section 1)."))


@exercise("06", "Row = the TRUE class, column = the prediction; each cell counts that pair, as integers.",
          "A loop over the pairs works. Faster: give each (true, predicted) pair its own number, true * num_classes + "
          "predicted, count those numbers as class_counts did, then reshape.")
def check_confusion_matrix(fn):
    labels, predictions = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3]), torch.tensor([0, 1, 1, 1, 2, 2, 3, 0])
    expected = torch.tensor([[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]])  # row: true, column: predicted
    call = "confusion_matrix(predictions, labels, num_classes=4)"
    out = tensor_result(fn(predictions.clone(), labels.clone(), num_classes=4), call)
    expect_shape(out, (4, 4), call)
    fail_if(out.is_floating_point(), f"Counts are whole numbers: return an integer tensor (int64); yours is "
            f"{out.dtype}.")
    verdict(out.long(), expected, f"{call} with labels {labels.tolist()} and predictions {predictions.tolist()} "
            f"should be {expected.tolist()}; yours is {out.tolist()}.", (expected.T, "Your matrix is transposed: row "
            "= the TRUE class, column = the prediction. The true 3 read as 0 belongs in row 3, column 0; expected "
            f"{expected.tolist()}, yours {out.tolist()}."), same=torch.equal)


@exercise("06", "Move each pixel one small step in the direction that RAISES the loss: the sign of d loss / d image.",
          "A copy of the images with requires_grad_(True); the gradient from backward() or torch.autograd.grad; "
          "epsilon is in pixel units (1 / std in normalised ones); clamp to black..white; return it detached.")
def check_fgsm(fn):
    def ref(sign=1.0, scale=True, clamp=True):  # FGSM with epsilon 0.1, or one of its usual slips
        x = images.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
        out = x.detach() + sign * (0.1 / std if scale else 0.1) * gradient.sign()
        return out.clamp(low, high) if clamp else out
    torch.manual_seed(0)
    model, mean, std = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), 0.13, 0.31
    low, high = (0 - mean) / std, (1 - mean) / std
    images = low + (high - low) * torch.rand(6, 1, 2, 2, generator=generator(1))
    images[0, 0, 0, 0], images[1, 0, 1, 1] = low, high  # black and white pixels: the clamp matters
    labels = torch.randint(0, 3, (6,), generator=generator(2))
    expected, given = ref(), images.clone()
    call = "fgsm(model, images (6, 1, 2, 2), labels, epsilon=0.1, mean=0.13, std=0.31)"
    out = tensor_result(fn(model, given, labels.clone(), 0.1, mean, std), call)
    fail_if(not torch.equal(given, images), "Your fgsm changed the images it was given; work on a copy "
            "(images.clone()).")
    expect_shape(out, images.shape, call)
    fail_if(out.requires_grad, "The adversarial images still carry the computation graph: return x_adv.detach() (or "
            "compute it from x.detach()).")
    variants = {
        "moved every pixel DOWNHILL (minus the gradient's sign): that lowers the loss and makes the model surer. "
        "FGSM moves uphill, + epsilon * sign(gradient), to raise the loss.": dict(sign=-1.0),
        "moved each pixel by epsilon in normalised units. epsilon is in pixel units (0..1); in the normalised "
        "images one pixel unit is 1 / std, so the step is epsilon / std.": dict(scale=False),
        "let pixels go beyond black and white: clamp the result to (0 - mean) / std .. (1 - mean) / std.":
            dict(clamp=False),
    }
    verdict(out, expected, f"Image 0 should become {numbers(expected[0])}; yours is {numbers(out[0])}.",
            *((ref(**options), "Your fgsm " + message) for message, options in variants.items()))


# --- 08 Fix it and prove it: debugging, reading training curves, saturation -------------------------------------
# A fix_* check runs the learner's function next to the course's correct code on the same data, from the same
# start, and compares what they DO (weights, outputs) exactly: a fix that only hides the symptom fails. Its
# messages describe the symptom as the learner would see it, never the bug.
def _easy_data(n: int = 60, seed: int = 0):
    """n learnable examples (n, 1, 2, 2) of 3 classes: a fixed random linear 'teacher' labels them."""
    g = generator(seed)
    images = torch.randn(n, 1, 2, 2, generator=g)
    return images, (images.flatten(1) @ torch.randn(4, 3, generator=g)).argmax(dim=1)


def _twins(seed: int, dropout: float = 0.0):
    """Two identical small networks (4 -> 16 -> 3) and their SGD optimizers (lr 0.5): the learner's, the reference's."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))
    models = model, copy.deepcopy(model)
    return (*models, *(torch.optim.SGD(m.parameters(), lr=0.5) for m in models))


def _same(a: nn.Module, b: nn.Module, got, want) -> bool:  # the same weights, and the same returned losses
    return all(close(p, q) for p, q in zip(a.parameters(), b.parameters())) and \
        close(torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64), 1e-4)


def _reference_step(model, images, labels, optimizer) -> float:
    """The course's five steps on one batch."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _reference_epoch(model, loader, optimizer) -> float:
    model.train()
    return sum(_reference_step(model, x, y, optimizer) * len(y) for x, y in loader) / len(loader.labels)


def _listed(values) -> str:
    return numbers(torch.tensor([float(v) for v in values]), limit=8)


_NOT_HIDDEN = "A lower or smoother loss does not count: fixed, this code computes what the course's does."


@exercise("08", "Compare the loop, line by line, with the five steps of 03's train_one_epoch.",
          "Print one weight's .grad after the first and after the second batch: is it the second batch's "
          "gradient alone? (01 section 6)")
def check_fix_train_epoch(fn):
    loader = dl_utils.InMemoryLoader(*_easy_data(), batch_size=10, shuffle=False)
    (mine, ref, opt_mine, opt_ref), call = _twins(0), "fix_train_epoch(model, loader, loss_fn, optimizer)"
    got = [float_result(fn(mine, loader, nn.CrossEntropyLoss(), opt_mine), call) for _ in range(4)]
    want = [_reference_epoch(ref, loader, opt_ref) for _ in range(4)]
    if not _same(mine, ref, got, want):
        raise Fail(f"Four epochs on an easy problem (60 examples, 3 classes, SGD lr 0.5): your loss per epoch is "
                   f"{_listed(got)}; the course's loop, from the same start on the same batches, gives "
                   f"{_listed(want)}, and your weights end up elsewhere than its. {_NOT_HIDDEN}")


@exercise("08", "Something in this model behaves at random while it trains; an evaluation must not.",
          "Which call switches a model between its training and its test behaviour? Compare with 03's evaluate().")
def check_fix_evaluate(fn):
    model, images, passes = _twins(1, dropout=0.5)[0], torch.randn(200, 1, 2, 2, generator=generator(1)), []
    with torch.no_grad():
        labels = model.eval()(images).argmax(dim=1)
    labels[:40] = (labels[:40] + 1) % 3  # 160 of 200 right: the model's true accuracy is 0.8
    loader = dl_utils.InMemoryLoader(images, labels, batch_size=50, shuffle=False)
    model.register_forward_hook(lambda *_: passes.append(1))
    model.train()  # as training left it
    torch.manual_seed(0)
    first, second = (float_result(fn(model, loader), "fix_evaluate(model, loader)") for _ in range(2))
    if first != second:
        raise Fail(f"Two evaluations of the same model on the same 200 images gave two different accuracies: "
                   f"{first:.3f}, then {second:.3f}. A trained model's score must not change from run to run.")
    if abs(first - 0.8) > 1e-9:
        raise Fail(f"Your evaluation says {first:.3f}; this model answers 160 of these 200 images right (0.800) "
                   "when it is used for predictions, as in 04: the evaluation measures another model.")
    if len(passes) > 2 * len(loader) or not isinstance(model[3], nn.Dropout) or model[3].p != 0.5:
        raise Fail("The accuracy is right, but your evaluation " + (f"ran the model {len(passes) // 2} times for "
                   f"{len(loader)} batches: one pass per batch is enough for a deterministic model." if
                   len(passes) > 2 * len(loader) else "changed the model: trained again, it would learn otherwise."))


@exercise("08", "Read what nn.CrossEntropyLoss expects as its input: probabilities, or raw scores?",
          "Look at the line between model(images) and the loss; ML_CONCEPTS \"Loss Functions\" says what the loss "
          "already does inside.")
def check_fix_train_step(fn):
    (images, labels), (mine, ref, opt_mine, opt_ref) = _easy_data(), _twins(2)
    call = "fix_train_step(model, images, labels, optimizer)"
    got = [float_result(fn(mine, images, labels, opt_mine), call) for _ in range(40)]
    want = [_reference_step(ref, images, labels, opt_ref) for _ in range(40)]
    if not _same(mine, ref, got, want):
        raise Fail(f"40 steps on an easy problem (60 examples, 3 classes, SGD lr 0.5): your loss went "
                   f"{got[0]:.3f} -> {got[9]:.3f} (step 10) -> {got[-1]:.3f} (step 40); the course's step, from the "
                   f"same start, takes it {want[0]:.3f} -> {want[9]:.3f} -> {want[-1]:.3f}, and the weights differ. {_NOT_HIDDEN}")


@exercise("08", "What the model trains on must not depend on the test set, not even through a mean.",
          "Look at which images the mean and std are computed from; 02 section 5 says which ones it should be.")
def check_fix_normalize(fn):
    train, test, brighter = _uint8_images(6, 2, 0, 128), _uint8_images(4, 4, 0, 200), _uint8_images(4, 5, 100, 256)
    pixels, call = train.double() / 255, "fix_normalize(train_images, test_images)"
    want = [((x.double() / 255 - pixels.mean()) / pixels.std()).unsqueeze(1) for x in (train, test)]
    got, other, alone = ([tensor_result(x, call) for x in pair_result(fn(train.clone(), split.clone()), call)]
                         for split in (test, brighter, test[:1]))
    row = lambda t: numbers(t[0, 0, 0, 8:])  # noqa: E731  (image 0, row 0, from column 8)
    if not close(got[0], other[0], 1e-3):
        raise Fail("The same 6 training images came out as different numbers when only the test images changed: "
                   f"training image 0 reads {row(got[0])} from its column 8 next to one test set, {row(other[0])} "
                   "next to a brighter one.")
    if not close(alone[1], got[1][:1], 1e-3):
        raise Fail("A test image comes out as different numbers depending on which other test images are "
                   f"normalised with it: alone it reads {row(alone[1])} from column 8, among four {row(got[1])}.")
    if not close(got[0], want[0], 1e-3) or not close(got[1], want[1], 1e-3):
        raise Fail(f"Normalised, the training images should have shape (6, 1, 28, 28), mean 0 and std 1 (what "
                   f"normalising does to the images its statistics come from); yours have shape {tuple(got[0].shape)}"
                   f", mean {got[0].mean():.3f} and std {got[0].std():.3f}; the test images must be scaled like them.")


@exercise("08", "Print five shuffled images' digits next to their labels: do the pairs survive the shuffle?",
          "Each torch.randperm call draws a new order. How many orders does a shuffle of (image, label) pairs need?")
def check_fix_shuffle(fn):
    n, call = 50, "fix_shuffle(50 images, 50 labels, generator)"
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).repeat(1, 1, 2, 2)  # image i is all i

    def shuffled(seed):  # (which image, its label) in the learner's order; image i shows the digit i % 10
        out = [tensor_result(t, call) for t in pair_result(fn(images.clone(), torch.arange(n) % 10,
                                                               generator(seed)), call)]
        return out[0][:, 0, 0, 0].long(), out[1]
    ids, tags = shuffled(0)
    if sorted(ids.tolist()) != list(range(n)) or len(tags) != n:
        raise Fail(f"{n} images went in; after your shuffle some appear twice and others are gone "
                   f"({len(set(ids.tolist()))} different images came out).")
    if not torch.equal(ids % 10, tags):
        i = int((ids % 10 != tags).nonzero()[0])
        raise Fail(f"Plot a few shuffled images with their labels (as 02 does) and the labels are wrong: only "
                   f"{int((ids % 10 == tags).sum())} of {n} images still come with their own label (image {ids[i]}, "
                   f"a {ids[i] % 10}, is labelled {tags[i]}). Trained on this, a network stays near 10% (chance).")
    if ids.tolist() == list(range(n)):
        raise Fail("Your function returns the images in their original order: nothing was shuffled.")
    if not torch.equal(shuffled(0)[0], ids) or torch.equal(shuffled(1)[0], ids):
        raise Fail("Your order does not follow the generator you are given: the same seed should repeat it (so a "
                   "rerun gives the same numbers), another seed change it.")


def _strokes():
    """A 1 and a 0 as MNIST draws them (white strokes, 255, on black, 0), (2, 28, 28) uint8."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    one = ((cols - 13.5).abs() < 1.5) & ((rows - 14).abs() < 10)
    zero = ((((rows - 14) / 9) ** 2 + ((cols - 14) / 6) ** 2).sqrt() - 1).abs() < 0.2
    return torch.stack([one, zero]).to(torch.uint8) * 255


@exercise("08", "Show the prepared tensor with plt.imshow next to a training image from 02: which is ink, "
          "which is paper?", "What is a pixel of 1 (white) in an MNIST image: ink or paper? And in a photo of a "
          "digit on paper? (04 section 8)")
def check_fix_prepare_digit(fn):
    mean, std, call = 0.1307, 0.3081, "fix_prepare_digit(photo (28, 28), mean, std)"
    mnist = (_strokes().float() / 255 - mean) / std  # the two digits as the model saw them in training
    photos = (235 - _strokes().float() * 210 / 255).to(torch.uint8)  # dark ink (25) on light paper (235)
    outs = [tensor_result(fn(photo.clone(), mean, std), call) for photo in photos]
    for out in outs:
        expect_shape(out, (1, 1, 28, 28), call, ": a batch of one")
    if all(close(out, ((1 - photo.float() / 255 - mean) / std)[None, None], 1e-4) for out, photo in zip(outs, photos)):
        return
    read = [(1, 0)[int((out.flatten(1) @ mnist.flatten(1).T).argmax())] for out in outs]  # knows 1 from 0
    raise Fail(f"A model that tells MNIST's 1s from its 0s reads your prepared 1 as a {read[0]} and your prepared "
               f"0 as a {read[1]}. The paper around the digit became {outs[0][0, 0, 0, 0]:.2f} and its ink "
               f"{outs[0][0, 0, 14, 13]:.2f}; in MNIST's images the background is {-mean / std:.2f} and the "
               f"strokes {(1 - mean) / std:.2f}.")


@exercise("08", "Print photos[0, 0, :2] and out[0, :, 0, :2]: the same two pixels, before and after. Which "
          "numbers went where?", "view() and reshape() re-read the same memory in a new shape; they never move "
          "an axis. Which call does? (ML_CONCEPTS \"Tensors\")")
def check_fix_channels_first(fn):
    photos = torch.zeros(2, 4, 6, 3, dtype=torch.uint8)
    photos[:, :, :3, 0], photos[:, :, 3:, 2], photos[1, :, :, 1] = 255, 255, 128  # red left, blue right
    want, call = photos.permute(0, 3, 1, 2).float() / 255, "fix_channels_first(photos (2, 4, 6, 3))"
    out = tensor_result(fn(photos.clone()), call)
    expect_shape(out, (2, 3, 4, 6), call, ": (N, channels, height, width)")
    if not close(out, want):
        raise Fail("The shape is right, but the picture is not: the test photo is red on its left half and blue "
                   f"on its right, so every row of its red channel, out[0, 0], should read {numbers(want[0, 0, 0])}; "
                   f"yours reads {numbers(out[0, 0, 0])} in row 0 and {numbers(out[0, 0, 1])} in row 1.")


class _WatchedLoader(dl_utils.InMemoryLoader):
    """Batches of 8; before each, counts the earlier batches' loss graphs (all but the last) still alive: loss_fn
    marks each graph with a hook, a function that lives exactly as long as the graph's node."""

    def __init__(self, images, labels):
        super().__init__(images, labels, batch_size=8, shuffle=False)
        self.nodes, self.most_held = [], 0

    def loss_fn(self, logits, labels):
        loss, marker = F.cross_entropy(logits, labels), lambda *_: None
        loss.grad_fn.register_hook(marker)
        self.nodes.append(weakref.ref(marker))
        return loss

    def __iter__(self):
        for batch in super().__iter__():
            if self.most_held < 2 and any(ref() is not None for ref in self.nodes[:-1]):
                gc.collect()  # reference cycles wait for the collector: count after it
            self.most_held = max(self.most_held, sum(ref() is not None for ref in self.nodes[:-1]))
            yield batch


@exercise("08", "Print total_loss after the first batch: what type is it, and what does it carry along?",
          "A tensor computed from the loss keeps its batch's whole computation alive. How does 03's train_one_epoch "
          "keep its running total?")
def check_fix_fit(fn):
    (mine, ref, opt_mine, opt_ref), loader = _twins(3), _WatchedLoader(*_easy_data(40))
    call = "fix_fit(model, loader, loss_fn, optimizer, epochs=3)"
    history = fn(mine, loader, loader.loss_fn, opt_mine, 3)
    if len(loader.nodes) != 3 * len(loader):
        raise Fail(f"{call} should compute each batch's loss with the loss_fn it is given; it was called "
                   f"{len(loader.nodes)} times for 3 epochs of {len(loader)} batches.")
    if loader.most_held:
        raise Fail(f"The memory in use grows with every batch: while your loop ran, the computations of up to "
                   f"{loader.most_held} earlier batches were still held in memory, though each is finished once its "
                   "step is taken. With 03's 860 batches an epoch, that grows until the machine runs out.")
    if not isinstance(history, (list, tuple)) or len(history) != 3:
        raise Fail(f"{call} should return a list of 3 numbers, one per epoch; yours returned {describe(history)}.")
    got = [float_result(value, f"Each number in {call}'s history") for value in history]
    want = [_reference_epoch(ref, loader, opt_ref) for _ in range(3)]
    if not _same(mine, ref, got, want):
        raise Fail(f"Your history is {_listed(got)}; the course's loop, from the same start on the same batches, "
                   f"gives {_listed(want)}.")


@exercise("08", "Print images.min() and images.max(), then the min and max of what your function returns.",
          "In which units were mean = 0.1307 and std = 0.3081 measured (02 section 5), and in which units are "
          "these pixels?")
def check_fix_prepare_batch(fn):
    images, labels, mean, std = _uint8_images(16, 6), torch.arange(16) % 10, 0.1307, 0.3081
    want, call = ((images.float() / 255 - mean) / std).unsqueeze(1), "fix_prepare_batch(images, mean, std)"
    out = tensor_result(fn(images.clone(), mean, std), call)
    expect_shape(out, (16, 1, 28, 28), call)
    if close(out, want, 1e-4):
        return

    def losses(batch):  # 8 steps of plain SGD on one batch, with a small MLP like 03's
        torch.manual_seed(4)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        return _listed(_reference_step(model, batch.float(), labels, optimizer) for _ in range(8))
    raise Fail(f"Trained with plain SGD (lr 0.05) on a batch prepared by your function, the loss goes "
               f"{losses(out)}; prepared like the training images, it goes {losses(want)}. Your pixels run from "
               f"{out.min():.4g} to {out.max():.4g}; the training images' from {want.min():.3g} to {want.max():.3g}.")


_CURVES = {  # real runs, docs/results/<run>.json, and what their curves say (LEARNING_GUIDE "Reading training curves")
    # Good fit: the validation loss ends within 6% of its best, the accuracies stay close. 03 --dropout 0.2 is one:
    # val loss 0.070 (epoch 9), 0.074 at the end; train and val accuracy 0.2 points apart.
    "03_dropout": "good fit", "03_batch_norm": "good fit", "03_sgd_momentum": "good fit", "06_cnn_mnist": "good fit",
    "03_early_stopping": "good fit",  # 03's run, stopped at epoch 8 with its validation loss back at its best
    # 03's default run is overfitting, mildly: its validation loss was lowest at epoch 5 (0.080) and ended 28%
    # higher (0.102) while the training loss kept falling (0.049 -> 0.018), the guide's own sign of overfitting.
    "03_train_mnist": "overfitting", "03_hidden_512": "overfitting", "03_overfit": "overfitting",
    "03_memorise": "overfitting",  # random labels learnt by heart: 99.9% on training, chance on validation
    "03_underfit": "underfitting", "03_init_zeros": "underfitting", "03_init_constant": "underfitting",
    "03_lr_too_high": "lr too high",  # 03 --lr 0.05: the training loss fell to 0.77, then climbed back to 0.95
}


@exercise("08", "LEARNING_GUIDE.md's \"Reading training curves\" asks four questions in order; the docstring's "
          "four rules are those questions, in numbers.",
          "min() and [-1] of each list give everything you need. Test for nan first: a comparison with nan is "
          "always False, so min() and > cannot see it (math.isfinite can).")
def check_diagnose(fn):
    diverged = {"train_loss": [2.1, 0.9, math.nan, math.nan], "val_loss": [1.2, 0.8, math.nan, math.nan],
                "train_accuracy": [0.4, 0.7, 0.1, 0.1], "val_accuracy": [0.6, 0.75, 0.1, 0.1]}
    for source, expected in [*((f"docs/results/{run}.json", label) for run, label in _CURVES.items()),
                             (diverged, "lr too high")]:
        if isinstance(source, str) and not (REPO / source).is_file():
            raise Fail(f"{source} is missing: this check reads real training histories from docs/results.")
        history = json.loads((REPO / source).read_text())["history"] if isinstance(source, str) else diverged
        got = fn(copy.deepcopy(history))
        if got != expected:
            tl, vl, ta, va = (history[k] for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"))
            what = f"the real run in {source}" if isinstance(source, str) else "a run whose loss became nan"
            raise Fail(f"diagnose({what}) should be {expected!r}; yours returned {describe(got)}. Its curves over "
                       f"{len(tl)} epochs: training loss {tl[0]:.3f} -> {tl[-1]:.3f} (lowest {min(tl):.3f}); "
                       f"validation loss lowest {min(vl):.3f}, last {vl[-1]:.3f}; last accuracy {ta[-1]:.3f} "
                       f"on training, {va[-1]:.3f} on validation.")


def _through(activation, depth: int, x: float) -> tuple[float, float]:
    """(dy/dx, y) for y = activation applied `depth` times to x, in float64."""
    t = torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
    y = t
    for _ in range(depth):
        y = activation(y)
    return torch.autograd.grad(y, t)[0].item(), y.item()


@exercise("08", "Autograd measures slopes: build y from x by applying the activation depth times, and ask for "
          "dy/dx (01 section 6).", "A new x = torch.tensor(value, dtype=torch.float64, requires_grad=True) for "
          "every input (gradients add up); the next layer gets the previous layer's output.")
def check_saturation(fn):
    inputs = [0.5, 1.0, 2.0, 4.0, 8.0]
    tanh = "tanh flattens out for large inputs, so its slope there is nearly 0 (it saturates), and each layer " \
           "multiplies in another slope below 1"
    for name, activation, depth, effect in (
            ("torch.tanh", torch.tanh, 1, tanh), ("torch.tanh", torch.tanh, 4, tanh),
            ("torch.relu", torch.relu, 4, "relu's slope is exactly 1 for every positive input, however deep"),
            ("torch.sigmoid", torch.sigmoid, 3, "sigmoid's slope is at most 0.25: each layer shrinks it fourfold")):
        call = f"saturation({name}, {depth}, {inputs})"
        got = fn(activation, depth, list(inputs))
        got = got.tolist() if isinstance(got, torch.Tensor) else got
        if not isinstance(got, (list, tuple)) or len(got) != len(inputs):
            raise Fail(f"{call} should return a list of {len(inputs)} numbers, one slope per input; yours returned "
                       f"{describe(got)}.")
        got = torch.tensor([float_result(value, f"Each number {call} returns") for value in got], dtype=torch.float64)
        want, outputs = (torch.tensor(v, dtype=torch.float64) for v in zip(*(_through(activation, depth, x)
                                                                           for x in inputs)))
        if ((got - want).abs() <= 1e-6 + 1e-4 * want.abs()).all():
            continue
        first_layer = torch.tensor([_through(activation, 1, x)[0] for x in inputs], dtype=torch.float64)
        note = (" Those are the outputs y, not the slopes dy/dx." if close(got, outputs) else
                " Yours is the first layer's slope to the power depth, as if every layer saw x itself; each sees "
                "the previous one's output." if close(got, first_layer ** depth) else "")
        raise Fail(f"{call} should be {_listed(want)} ({effect}); yours is {_listed(got)}.{note}")
