"""01 - Hello, PyTorch: tensors, autograd and activation functions.

What you will learn
  * what a tensor is (shape, dtype, device) and how to compute with it: arithmetic,
    matrix multiplication (@), reshape/view, indexing, and where it runs (CPU or GPU)
  * broadcasting: how a (3, 1) and a (4,) tensor add up to a (3, 4) one, and
    the NumPy bridge (why changing the array can change the tensor)
  * autograd: PyTorch computes derivatives for you (we check one by hand)
  * the activations ReLU, leaky ReLU, sigmoid and tanh, and softmax, which turns
    scores into probabilities (and what its temperature does)

Run first: nothing, this is the first lesson. It needs no MNIST and no internet.
Read the output next to this file: each printed step is a numbered section below.

Run it
    python 01_hello_pytorch.py                           # every section, then the plot
    python 01_hello_pytorch.py --temperatures 0.1 1 10   # change a setting and rerun
    python 01_hello_pytorch.py --device cpu              # force the CPU even if you have a GPU
    python 01_hello_pytorch.py --help                    # every setting, its default and why
(There is no --quick here: 01 trains nothing and takes seconds.)

Writes (in outputs/, or --out-dir)
    activation_functions.png   each activation and its slope, and softmax at 4 temperatures
    01_hello_pytorch.json      the numbers this script printed

How long: a few seconds on a 2-core CPU, mostly importing PyTorch and matplotlib (README.md "Results").
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import dl_utils

# --- Settings: change one, rerun, compare ----------------------------------
# Each is a flag (LOGITS -> --logits), its comment the --help text; all are recorded in the JSON.
SEED = 0  # torch.rand gives the same "random" numbers every run with the same seed
X_AUTOGRAD = 2.0  # where section 6 takes the derivative of y = x**2 + 3x (by hand: 2x + 3 = 7)
SAMPLE_INPUTS = [-2.0, -1.0, 0.0, 1.0, 2.0]  # section 7 feeds these to every activation function
LEAKY_SLOPE = 0.1  # leaky ReLU's slope for x < 0 (PyTorch's default is 0.01; 0.1 is easier to see)
LOGITS = [2.0, 1.0, 0.1]  # raw scores ("logits"), one per class, for the softmax example in section 8
TEMPERATURES = [0.5, 1.0, 2.0, 5.0]  # softmax(logits / T): T < 1 sharper, T > 1 flatter
SETTINGS = dl_utils.collect_settings(globals())  # the block above, in order: the flags and the recorded config


# --- 1. Creating tensors: shape, dtype, device -----------------------------
# A tensor is an n-dimensional array of numbers of one type: a number
# (0-d), a vector (1-d), a matrix (2-d), a batch of images (4-d: batch,
# channel, height, width). Every tensor has a shape, a dtype (the type
# of its numbers) and a device (the memory it lives in).
def creating_tensors(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 1: returns the int matrix `a` (2, 3) and the float matrix `b` (3, 2) used in section 2."""
    a = torch.tensor([[1, 2, 3], [4, 5, 6]])  # from a Python list: whole numbers -> int64
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # a decimal point -> float32
    r = torch.rand(2, 3)  # uniform in [0, 1); same numbers every run thanks to the seed
    print(f"a = torch.tensor([[1, 2, 3], [4, 5, 6]])  shape {tuple(a.shape)}, dtype {a.dtype}, device {a.device}")
    print(f"b = 3 x 2 matrix of floats              shape {tuple(b.shape)}, dtype {b.dtype}")
    print(f"torch.zeros(2, 3) = {torch.zeros(2, 3).tolist()}, torch.arange(5) = {torch.arange(5).tolist()}")
    print(f"torch.rand(2, 3) (seed {seed}):\n{r}")
    print(f"a.float() converts int64 -> {a.float().dtype}; networks compute in float32")
    return a, b


# --- 2. Arithmetic and matrix multiplication -------------------------------
# +, -, *, / and ** work element by element (shapes must match, or
# broadcast: section 4). `@` is matrix multiplication: (2, 3) @ (3, 2)
# -> (2, 2), each output the dot product of a row and a column. It is the
# core of every neural network layer: nn.Linear computes x @ W.T + b.
def arithmetic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Section 2: returns the matrix product a.float() @ b, (2, 2)."""
    c = a.float()
    print(f"a + 10        = {(a + 10).tolist()}")
    print(f"a * a         = {(a * a).tolist()}   (element by element)")
    print(f"a.sum() = {a.sum().item()}, c.mean() = {c.mean().item()}, a.max() = {a.max().item()}")
    product = c @ b
    print(f"c @ b: (2, 3) @ (3, 2) -> {tuple(product.shape)} = {product.tolist()}")
    print(f"  top-left by hand: 1*1 + 2*3 + 3*5 = {1 * 1 + 2 * 3 + 3 * 5}")
    return product


# --- 3. Reshaping and indexing ---------------------------------------------
# view/reshape rearrange the same numbers into a new shape (the count
# must stay the same; -1 means "whatever fits"). A view shares memory
# with the original: no copy. This is how 03 flattens a (64, 1, 28, 28)
# batch of images into (64, 784) rows for its first Linear layer.
def reshaping_and_indexing() -> torch.Size:
    """Section 3: returns the shape of a flattened batch of 64 images, (64, 784)."""
    t = torch.arange(12)
    grid = t.view(3, 4)
    print(f"torch.arange(12).view(3, 4):\n{grid}")
    print(f"grid[0] = {grid[0].tolist()} (first row), grid[:, 1] = {grid[:, 1].tolist()} (second column), "
          f"grid[1, 2] = {grid[1, 2].item()}")
    print(f"grid[grid > 8] = {grid[grid > 8].tolist()}  (a boolean mask picks elements)")
    grid[0, 0] = 100
    print(f"after grid[0, 0] = 100, t[0] is {t[0].item()}: a view shares memory with the original")
    images = torch.zeros(64, 1, 28, 28)  # 64 images, 1 channel (grey), 28 x 28 pixels; -1 = 1 * 28 * 28 = 784
    print(f"a batch of images {tuple(images.shape)} -> .view(64, -1) -> {tuple(images.view(64, -1).shape)}")
    return images.view(64, -1).shape


# --- 4. Broadcasting -------------------------------------------------------
# When shapes differ, PyTorch lines them up from the right; a dimension
# of size 1 (or a missing one) is stretched to match, without copying.
# (3, 1) + (4,) -> (3, 1) + (1, 4) -> (3, 4). That is how a layer adds
# one bias vector to every row of a batch.
def broadcasting() -> torch.Size:
    """Section 4: returns the shape of (3, 1) + (4,), which is (3, 4)."""
    column = torch.tensor([[0], [10], [20]])  # (3, 1)
    row = torch.tensor([1, 2, 3, 4])  # (4,)
    table = column + row
    print(f"column {tuple(column.shape)} + row {tuple(row.shape)} -> {tuple(table.shape)}:\n{table}")
    data = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    print(f"data - data.mean(dim=0): (2, 2) - (2,) -> {(data - data.mean(dim=0)).tolist()}  (centre each column)")
    return table.shape


# --- 5. The NumPy bridge ---------------------------------------------------
# torch.from_numpy(array) and tensor.numpy() do not copy: the tensor and
# the array are two views of the same memory (on the CPU), so changing
# one changes the other. torch.tensor(array) makes an independent copy.
def numpy_bridge() -> bool:
    """Section 5: returns True when from_numpy/numpy() shared memory and torch.tensor() copied."""
    array = np.array([1.0, 2.0, 3.0])
    shared = torch.from_numpy(array)
    copied = torch.tensor(array)
    array[0] = 99.0
    print("array = np.array([1.0, 2.0, 3.0]); then array[0] = 99:")
    print(f"  torch.from_numpy(array) = {shared.tolist()}  (shared memory: it changed too)")
    print(f"  torch.tensor(array)     = {copied.tolist()}  (a copy: it did not)")
    back = shared.numpy()
    shared[1] = -1.0
    print(f"shared[1] = -1: shared.numpy() = {back.tolist()}, the original array = {array.tolist()}")
    return bool(shared[0].item() == 99.0 and array[1] == -1.0 and copied[0].item() == 1.0)


# --- 6. Autograd: derivatives for free -------------------------------------
# requires_grad=True tells PyTorch to record every operation on x. Then
# y.backward() walks that record backwards (the chain rule) and stores
# dy/dx in x.grad. Training does exactly this, with a loss for y and a
# hundred thousand weights for x.
def autograd(x_value: float) -> dict:
    """Section 6: dy/dx of y = x**2 + 3x from autograd and by hand, and after a second backward()."""
    x = torch.tensor(x_value, requires_grad=True)
    y = x ** 2 + 3 * x
    y.backward()
    by_hand = 2 * x_value + 3  # d/dx (x^2 + 3x) = 2x + 3
    gradient = x.grad.item()
    print(f"y = x**2 + 3*x at x = {x_value:g}: y = {y.item():g}")
    print(f"autograd: dy/dx = x.grad = {gradient:g};  by hand: 2x + 3 = {by_hand:g}")
    measured = {"x": x_value, "y": y.item(), "dy_dx": gradient, "dy_dx_by_hand": by_hand}
    y = x ** 2 + 3 * x  # a second backward() ADDS to x.grad: why training calls zero_grad()
    y.backward()
    print(f"after a second backward(), x.grad = {x.grad.item():g}: gradients add up until you zero them")
    return {**measured, "grad_after_two_backward_calls": x.grad.item()}


# --- 7. Activation functions -----------------------------------------------
# A Linear layer only multiplies and adds, and two of them in a row are
# still one straight-line function. An activation bends the output, so
# stacked layers can learn curved decision boundaries. ReLU (zero for
# negatives) is the usual choice between layers; sigmoid squashes into
# (0, 1), tanh into (-1, 1). Their slopes (the dashed lines in the plot)
# matter: sigmoid and tanh are almost flat far from 0, so gradients
# through them vanish; ReLU keeps slope 1 for every positive input.
def activation_functions(leaky_slope: float) -> dict:
    """name -> (function, formula, what it is known for): the four activations we tabulate and plot."""
    return {
        "ReLU": (torch.relu, "max(0, x)", "the default between layers"),
        "Leaky ReLU": (lambda x: F.leaky_relu(x, leaky_slope), f"max({leaky_slope:g}x, x)",
                       "keeps a small slope for x < 0"),
        "Sigmoid": (torch.sigmoid, "1 / (1 + e^-x)", "squashes into (0, 1)"),
        "Tanh": (torch.tanh, "tanh(x)", "squashes into (-1, 1)"),
    }


def activation_table(activations: dict, sample_inputs: list[float]) -> dict:
    """Section 7: every activation at the sample inputs, {"inputs": [...], name: [...]}."""
    inputs = torch.tensor(sample_inputs)
    print(f"{'x':>12} " + " ".join(f"{v:6.2f}" for v in sample_inputs))
    table = {"inputs": sample_inputs}
    for name, (fn, _, _) in activations.items():
        table[name] = fn(inputs).tolist()
        print(f"{name:>12} " + " ".join(f"{v:6.2f}" for v in table[name]))
    return table


# --- 8. Softmax: scores -> probabilities -----------------------------------
# A classifier's last layer outputs one raw score ("logit") per class:
# any real numbers. Softmax makes them positive (exp) and makes them
# sum to 1 (divide by the total). The largest logit gets the largest
# probability. Dividing the logits by a temperature T first keeps the
# order but changes the confidence: T < 1 sharper, T > 1 flatter.
def softmax_by_hand(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """exp(z / T) / sum(exp(z / T)): every output is positive and they sum to 1."""
    exps = torch.exp(logits / temperature)
    return exps / exps.sum()


def rounded(values) -> str:
    """[0.659, 0.242, 0.099]: a list printed with 3 decimals."""
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def softmax_table(logit_values: list[float], temperatures: list[float]) -> dict:
    """Section 8: softmax of the logits (by torch and by hand), and at every temperature."""
    logits = torch.tensor(logit_values)
    exps = torch.exp(logits)
    probs = torch.softmax(logits, dim=0)
    print(f"{'logits':<22}{rounded(logit_values)}")
    print(f"{'exp(logits)':<22}{rounded(exps.tolist())}, sum {exps.sum().item():.3f}")
    print(f"{'exp / sum = softmax':<22}{rounded(probs.tolist())}, sum {probs.sum().item():.3f}")
    by_temperature = {}
    for temperature in temperatures:
        p = torch.softmax(logits / temperature, dim=0)
        by_temperature[str(temperature)] = p.tolist()
        print(f"{f'T = {temperature:g}: softmax(z/T)':<22}{rounded(p.tolist())}  "
              f"(top class {p.argmax().item()} at {100 * p.max().item():.0f}%)")
    print("The order never changes with T, so neither does the prediction; only the confidence does.")
    return {"logits": logit_values, "probabilities": probs.tolist(), "sum": probs.sum().item(),
            "by_hand": softmax_by_hand(logits).tolist(), "temperatures": by_temperature}


# --- 9. Devices: CPU or GPU ------------------------------------------------
# A tensor lives on one device; maths needs all its tensors on the same
# one, so scripts move the model and the data with .to(device). "auto"
# picks an NVIDIA GPU (cuda), then an Apple one (mps), then the CPU. The
# result of a computation lives where its inputs are; .cpu() or .tolist()
# brings it back to print it.
def devices(preference: str, b: torch.Tensor) -> tuple[torch.device, torch.Tensor]:
    """Section 9: the device --device picks, and b.T @ b computed there (2, 2)."""
    device, why = dl_utils.get_device(preference)
    print(f"device: {device} ({why})")
    on_device = b.to(device)  # a copy in the device's memory (the same tensor if it is already there)
    product = on_device.T @ on_device  # (2, 3) @ (3, 2) -> (2, 2), computed on the device
    print(f"b.to(device) is on {on_device.device}; b.T @ b, computed there, is on {product.device}: "
          f"{product.cpu().tolist()}")
    print('How much faster a GPU is, and when it is not: see docs/PERFORMANCE.md, "On a GPU"')
    return device, product


# --- 10. The plot ----------------------------------------------------------
def plot_activations(path, activations: dict, logit_values: list[float], temperatures: list[float], *,
                     settings: str, show: bool = False):
    """Top: each activation (solid) and its slope from autograd (dashed). Bottom: softmax at each temperature."""
    fig = plt.figure(figsize=(14, 8))
    grid = fig.add_gridspec(2, len(activations), height_ratios=[1, 1.1])
    for column, (name, (fn, formula, note)) in enumerate(activations.items()):
        ax = fig.add_subplot(grid[0, column])
        # The dashed slope is not a formula we typed in: autograd computes it.
        # y[i] depends only on x[i], so the gradient of y.sum() with respect
        # to x is exactly the derivative f'(x) at every point.
        x = torch.linspace(-5, 5, 501, requires_grad=True)
        y = fn(x)
        y.sum().backward()
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        xs = x.detach().numpy()
        ax.plot(xs, y.detach().numpy(), color="tab:blue", lw=2.2, label="f(x)")
        ax.plot(xs, x.grad.numpy(), color="tab:orange", lw=1.8, ls="--", label="slope f'(x) (autograd)")
        ax.set(title=f"{name}: f(x) = {formula}\n{note}", xlabel="input x", ylabel="output", ylim=(-1.6, 3.1))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8.5)

    ax = fig.add_subplot(grid[1, :])
    logits = torch.tensor(logit_values)
    width = 0.8 / len(temperatures)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(temperatures)))
    for i, temperature in enumerate(temperatures):
        probs = torch.softmax(logits / temperature, dim=0).tolist()
        note = " (sharper)" if temperature < 1 else " (flatter)" if temperature > 1 else " (plain softmax)"
        positions = np.arange(len(logits)) + (i - (len(temperatures) - 1) / 2) * width
        bars = ax.bar(positions, probs, width * 0.95, color=colors[i], label=f"T = {temperature:g}{note}")
        ax.bar_label(bars, labels=[f"{p:.2f}" for p in probs], fontsize=9, padding=2)
    ax.set_xticks(np.arange(len(logits)), [f"class {k}\nlogit {z:g}" for k, z in enumerate(logit_values)])
    ax.set(ylim=(0, 1.1), ylabel="probability",
           title=f"Softmax turns logits {logit_values} into probabilities that sum to 1; "
                 "dividing the logits by a temperature T changes how sure it looks")
    ax.axhline(1 / len(logits), color="0.4", ls=":", lw=1.2, label=f"1/{len(logits)}: all equal (T very large)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="softmax(logits / T)", loc="best")  # where it hides the fewest bars
    fig.suptitle(f"Activation functions (top), softmax with temperature (bottom)  [settings: {settings}]", fontsize=14)
    return dl_utils.finish_figure(fig, path, show=show)


def main(argv=None) -> dict:
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__,
                                   types={"X_AUTOGRAD": float, "SAMPLE_INPUTS": float, "LOGITS": float})  # may be < 0
    args = dl_utils.parse_args(parser, argv)  # --data-dir is accepted, as everywhere, but 01 reads no MNIST
    dl_utils.set_seed(args.seed)
    torch.set_printoptions(precision=4, sci_mode=False)  # 0.2424, not 2.4243e-01
    activations = activation_functions(args.leaky_slope)

    # Sections 1-9, each a function above: read its comment, then its output.
    dl_utils.step("1. Creating tensors")
    a, b = creating_tensors(args.seed)
    dl_utils.step("2. Arithmetic and matrix multiplication")
    product = arithmetic(a, b)
    dl_utils.step("3. Reshaping and indexing")
    flattened = reshaping_and_indexing()
    dl_utils.step("4. Broadcasting")
    broadcast = broadcasting()
    dl_utils.step("5. The NumPy bridge")
    numpy_shares_memory = numpy_bridge()
    dl_utils.step("6. Autograd")
    gradients = autograd(args.x_autograd)
    dl_utils.step("7. Activation functions")
    table = activation_table(activations, args.sample_inputs)
    dl_utils.step("8. Softmax")
    softmax = softmax_table(args.logits, args.temperatures)
    dl_utils.step("9. Devices")
    device, device_product = devices(args.device, b)

    dl_utils.step("10. The plot, and the record of what this run printed")
    plot_path = plot_activations(args.out_dir / "activation_functions.png", activations, args.logits,
                                 args.temperatures, settings=dl_utils.changed_settings(parser, args), show=args.show)
    results = {"script": "01_hello_pytorch", "torch_version": torch.__version__,
               "settings": dl_utils.settings_from_args(args),  # every setting, read from the flags
               "shapes": {"a": list(a.shape), "b": list(b.shape)}, "dtypes": {"a": str(a.dtype), "b": str(b.dtype)},
               "matmul": product.tolist(), "flattened_batch_shape": list(flattened), "broadcast_shape": list(broadcast),
               "numpy_shares_memory": numpy_shares_memory, "autograd": gradients, "activations": table,
               "softmax": softmax, "device": dl_utils.device_name(device), "device_matmul": device_product.tolist()}
    dl_utils.save_results(args.out_dir, "01_hello_pytorch", results)
    print(f"Saved {plot_path.name} and 01_hello_pytorch.json in {args.out_dir}")
    print("Next: python 02_load_mnist.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
