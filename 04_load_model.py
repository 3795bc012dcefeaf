"""04 - Load a trained model and use it.

What you will learn
  * what a checkpoint holds, and why loading weights needs the model's code
  * why the architecture must match: PyTorch's real error when it does not
  * model.eval() and torch.no_grad() for inference, and that a reloaded model
    gives exactly the same test accuracy as when it was saved
  * logits -> softmax -> prediction with a confidence
  * the two ways to save a model (state_dict vs the whole object), and why
    this course saves state_dicts and loads them with weights_only=True
  * your own handwriting: a picture (--image) or drawn live with the mouse (--draw)

Run first: 03_train_mnist.py (it writes outputs/mnist_model.pth).

Run it
    python 04_load_model.py                          # load, evaluate, explain
    python 04_load_model.py --image my_digit.png     # what does it say about YOUR handwriting?
    python 04_load_model.py --draw                   # draw a digit with the mouse, watch the prediction
    python 04_load_model.py --model outputs/cnn_model.pth --draw   # the same with 06's CNN, no retraining
    python 03_train_mnist.py --hidden 256 --out-dir outputs/hidden256   # then a model with 256 neurons:
    python 04_load_model.py --hidden 256 --model outputs/hidden256/mnist_model.pth
    python 04_load_model.py --data-dir DATA_DIR      # MNIST kept elsewhere

Writes (in outputs/, or --out-dir)
    predictions.png        test digits with the prediction and its confidence
    04_load_model.json     the reloaded test accuracy, next to 03's
    own_digit.png          with --image: your picture, what the network saw, its probabilities
    drawn_digit.png        with --draw, when you press s: your drawing, ready for --image

How long: about 5 s on the course's 2-core CPU (it trains nothing; README "Results"). --draw
opens its window after reading the checkpoint: it needs no MNIST.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import dl_utils

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
HIDDEN = 128  # must equal the --hidden the checkpoint was trained with (03's default is 128)
MODEL_FILE = "mnist_model.pth"  # what 03_train_mnist.py writes in its out-dir
N_FIRST, N_UNSURE = 6, 6  # predictions.png: a row of the first 6 test digits, a row of the 6 it is least sure of
SEED = 0
PAD_PIXELS = 280  # --draw: the drawing pad is 280 x 280, 10x MNIST's 28, so a mouse stroke stays smooth
BRUSH = 12  # --draw: brush radius in pad pixels; the preparation brings any stroke to MNIST's width anyway
DRAWING_FILE = "drawn_digit.png"  # --draw: where the s key saves your drawing (then try it with --image)

# ---------------------------------------------------------------------------
# 1. The model's code
# ---------------------------------------------------------------------------
# A checkpoint stores numbers (the state_dict: layer name -> tensor), not
# code. To use it you first build the same network in Python, then pour the
# numbers in. So we need the SimpleNN class from 03. A file whose name starts
# with a digit cannot be imported with `import`, so dl_utils.import_script
# does it with importlib; in your own project you would write
# `from model import SimpleNN`.
SimpleNN = dl_utils.import_script("03_train_mnist").SimpleNN


def build_model(checkpoint: dict, *, hidden: int, batch_norm: bool) -> torch.nn.Module:
    """The network to pour the checkpoint into: 03's SimpleNN built from OUR settings, or 06's CNN.

    For the SimpleNN we deliberately use this script's --hidden/--batch-norm,
    not the checkpoint's model_config, so that you see what a mismatch does.
    A CNN checkpoint (arch "CNN", from 06) has no size to choose: its class
    comes from 06_cnn_mnist.py, the code that defines it.
    """
    if checkpoint["arch"] == "CNN":
        CNN = dl_utils.import_script("06_cnn_mnist").CNN
        return CNN(dropout=checkpoint["model_config"].get("dropout", 0.0))
    return SimpleNN(hidden=hidden, batch_norm=batch_norm)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Load the model trained by 03 and use it.")
    dl_utils.add_common_args(parser, seed=SEED)
    parser.add_argument("--model", type=Path, default=None,
                        help=f"checkpoint to load (default: <out-dir>/{MODEL_FILE})")
    parser.add_argument("--hidden", type=dl_utils.positive_int, default=HIDDEN,
                        help="hidden size of the model we rebuild; must match the checkpoint (default: %(default)s)")
    parser.add_argument("--batch-norm", action="store_true",
                        help="rebuild with batch norm, for a checkpoint trained with 03's --batch-norm")
    parser.add_argument("--image", type=Path, default=None,
                        help="a PNG/JPEG of a handwritten digit to classify (any size, colours, position)")
    parser.add_argument("--draw", action="store_true",
                        help="open a window to draw digits with the mouse and watch the prediction (needs a screen)")
    return parser


def explain_mismatch(model, checkpoint: dict, path: Path) -> str:
    """One paragraph: what differs between the checkpoint and the model we built, and the fix."""
    if checkpoint["arch"] not in ("SimpleNN", "CNN"):
        return (f"{path} holds a {checkpoint['arch']} model; this script rebuilds 03's SimpleNN and 06's CNN only. "
                "A checkpoint can only be loaded into the architecture that produced it: build that class, "
                "then call load_state_dict.")
    if checkpoint["arch"] == "CNN":
        problems = "; ".join(dl_utils.state_dict_mismatches(model, checkpoint["state_dict"]))
        return (f"The CNN checkpoint {path} does not fit the CNN class in 06_cnn_mnist.py: {problems}. "
                "Was 06's network changed after this model was trained? Retrain it: python 06_cnn_mnist.py")
    config = checkpoint["model_config"]
    problems = "; ".join(dl_utils.state_dict_mismatches(model, checkpoint["state_dict"]))
    fix = f"--hidden {config['hidden']}" + (" --batch-norm" if config.get("batch_norm") else "")
    return (f"The checkpoint {path} was trained with hidden={config['hidden']}, "
            f"batch_norm={config.get('batch_norm', False)}, but this script built SimpleNN(hidden={model.fc1.out_features}, "
            f"batch_norm={not isinstance(model.norm, torch.nn.Identity)}). The layers do not fit: {problems}. "
            f"Rebuild the same architecture: run python 04_load_model.py {fix} (or set HIDDEN at the top of this file).")


# ---------------------------------------------------------------------------
# 2. Open the checkpoint: a dict, not just weights
# ---------------------------------------------------------------------------
# dl_utils.load_checkpoint uses torch.load(weights_only=True): a .pth is a
# pickle, and an untrusted pickle can run code when loaded; weights_only
# allows tensors and plain containers only.
def open_checkpoint(path: Path) -> dict:
    checkpoint = dl_utils.load_checkpoint(path)
    print(f"\nCheckpoint {path} (torch {checkpoint['torch_version']}):")
    for key in ("arch", "model_config", "hyperparameters", "metrics", "normalization"):
        print(f"  {key:16s} {checkpoint[key]}")
    print(f"  state_dict       " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in checkpoint["state_dict"].items()))
    return checkpoint


# ---------------------------------------------------------------------------
# 3. Rebuild the architecture from OUR settings, then load the weights
# ---------------------------------------------------------------------------
def rebuild(checkpoint: dict, path: Path, *, hidden: int, batch_norm: bool, device) -> torch.nn.Module:
    model = build_model(checkpoint, hidden=hidden, batch_norm=batch_norm)
    if checkpoint["arch"] not in ("SimpleNN", "CNN") or dl_utils.state_dict_mismatches(model, checkpoint["state_dict"]):
        raise dl_utils.CourseError(explain_mismatch(model, checkpoint, path))
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device)
    # eval(): dropout off, batch norm uses its saved running statistics.
    # Forgetting it is a classic bug: predictions then vary from run to run.
    return model.eval()


# ---------------------------------------------------------------------------
# 4. What if the architecture does not match? PyTorch's own words
# ---------------------------------------------------------------------------
# A model with 64 hidden neurons has a (64, 784) first weight matrix; the
# saved one is (hidden, 784). There is nowhere to put the extra numbers,
# so load_state_dict refuses, listing every layer that does not fit. (For
# 06's CNN checkpoint the layer names differ too: "Unexpected key(s)".)
def show_mismatch(checkpoint: dict, *, hidden: int, batch_norm: bool) -> str:
    wrong_hidden = 64 if hidden != 64 else 32
    try:
        SimpleNN(hidden=wrong_hidden, batch_norm=batch_norm).load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        print(f"\nLoading into SimpleNN(hidden={wrong_hidden}) on purpose fails; PyTorch says:\n  "
              + "\n  ".join(str(error).strip().splitlines()))
        print("Fix: build the model the checkpoint names (arch) with the settings it was trained with "
              "(model_config): that is why the course saves both next to the weights.")
        return str(error)
    return ""


# ---------------------------------------------------------------------------
# 6. Inside one prediction: logits -> softmax -> digit
# ---------------------------------------------------------------------------
# Confidence is the largest softmax probability. High confidence is not
# proof of being right, but the digits the model is least sure about are
# where its mistakes hide: predictions.png shows a row of each.
def inside_one_prediction(model, data, probabilities, labels, *, arch: str, accuracy: float, out_dir, show: bool):
    least_sure = probabilities.max(dim=1).values.argsort()[:N_UNSURE]
    for name, index in (("the first test digit", 0), ("the test digit it is least sure about", least_sure[0].item())):
        with torch.no_grad():
            logits = model(data.test_loader.images[index:index + 1])[0].cpu()  # (10,) raw scores
        probs = torch.softmax(logits, dim=0)  # exp(logit) / sum(exp(logits)): positive, sums to 1
        print(f"\nInside one prediction: {name} (#{index}, true label {labels[index].item()})")
        print("  digit         " + " ".join(f"{d:6d}" for d in range(10)))
        print("  logits        " + " ".join(f"{v:6.2f}" for v in logits.tolist()))
        print("  softmax (%)   " + " ".join(f"{100 * v:6.1f}" for v in probs.tolist()) + f"   sum = {probs.sum():.3f}")
        print(f"  prediction    {probs.argmax().item()}, confidence {100 * probs.max():.1f}%")
    shown = torch.cat([torch.arange(N_FIRST), least_sure]).to(data.test_loader.images.device)
    return dl_utils.plot_prediction_grid(
        data.test_loader.images[shown].cpu(), labels[shown.cpu()], probabilities[shown.cpu()],
        out_dir / "predictions.png", mean=data.mean, std=data.std, show=show, columns=max(N_FIRST, N_UNSURE),
        title=f"{arch} (test accuracy {100 * accuracy:.2f}%). Top row: the first {N_FIRST} test digits. "
              f"Bottom row: the {N_UNSURE} it is least sure about (red = wrong)")


# ---------------------------------------------------------------------------
# 7. Two ways to save a model
# ---------------------------------------------------------------------------
# (a) torch.save(model.state_dict()) - what this course does (inside a dict
#     with the config): only tensors, loadable with weights_only=True, and
#     still loadable after you rename files or refactor the class.
# (b) torch.save(model) - pickles the whole object. Convenient, but the
#     pickle refers to the class by its module path, so it breaks when the
#     code moves, and it can only be opened with weights_only=False, which
#     would also run any code an attacker hid in the file.
def two_ways_to_save(model, model_path: Path, device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        whole_path = Path(tmp) / "whole_model.pth"
        torch.save(model.cpu(), whole_path)
        try:
            torch.load(whole_path, weights_only=True)
            safe_load = "loaded (unexpected)"
        except Exception as error:  # torch raises UnpicklingError here
            safe_load = f"refused: {type(error).__name__}"
        torch.load(whole_path, weights_only=False)  # fine: we wrote this file a second ago
        whole_kb = whole_path.stat().st_size / 1024
    model.to(device)
    print(f"\nSaving the whole model object: {whole_kb:.0f} KB; the course checkpoint: "
          f"{model_path.stat().st_size / 1024:.0f} KB. torch.load(weights_only=True) on the whole object: "
          f"{safe_load}, as it should be - only load whole pickled models you made yourself.")


# ---------------------------------------------------------------------------
# 9. Draw a digit, live (--draw)
# ---------------------------------------------------------------------------
# A drawing pad in a matplotlib window. After every stroke the drawing goes
# through exactly what --image does (it is saved as a PNG and read back by
# dl_utils.prepare_digit_image: inverted, cropped, scaled to 20 pixels,
# centred by its centre of mass), and the window shows the 28x28 the network
# sees and its ten probabilities. Watch them change as you add a stroke: a
# "1" becomes a "7" with one bar on top.
class DrawingPad:
    """The --draw window: a pad on the left, what the network sees in the middle, its answer on the right.

    Left mouse button draws; keys c (clear), s (save as drawn_digit.png), q
    (quit), or the buttons below the pad. Tests send the figure synthetic
    mouse events, which arrive here exactly as a real mouse's do.
    """

    def __init__(self, model, *, normalization: dict, out_dir: Path, model_name: str, device="cpu"):
        import matplotlib.pyplot as plt
        from matplotlib.widgets import Button

        self.model, self.normalization, self.device = model, normalization, device
        self.out_dir, self.model_name = Path(out_dir), model_name
        self.ink = np.zeros((PAD_PIXELS, PAD_PIXELS))  # 0 = paper, 1 = ink, as the brush leaves it
        self.last = None  # the previous mouse position while the button is held
        self.predictions = []  # (digit, confidence) after each stroke
        self._tmp = tempfile.TemporaryDirectory()  # the PNG each stroke is read back from
        for key in ("keymap.save", "keymap.quit", "keymap.back"):  # matplotlib's own s, q and c keys
            plt.rcParams[key] = [k for k in plt.rcParams[key] if k not in ("s", "q", "c")]

        self.fig = plt.figure(figsize=(13, 5.4))
        if self.fig.canvas.manager is not None:  # a window (none when a test draws into memory)
            self.fig.canvas.manager.set_window_title(f"Draw a digit: {model_name}")
        self.ax_pad = self.fig.add_axes([0.02, 0.17, 0.3, 0.66])
        self.ax_seen = self.fig.add_axes([0.37, 0.27, 0.22, 0.48])
        self.ax_bars = self.fig.add_axes([0.66, 0.17, 0.32, 0.62])
        self.pad_image = self.ax_pad.imshow(1 - self.ink, cmap="gray", vmin=0, vmax=1)  # black ink on white
        self.seen_image = self.ax_seen.imshow(np.zeros((28, 28)), cmap="gray", vmin=0, vmax=1,
                                              interpolation="nearest")
        self.bars = self.ax_bars.bar(range(10), np.zeros(10), color="tab:gray")
        self.ax_pad.set_title("draw here (left mouse button)")
        self.ax_seen.set_title("what the network sees (28 x 28)")
        self.ax_bars.set(xlabel="digit", ylabel="probability (%)", ylim=(0, 105), xticks=range(10))
        self.ax_bars.grid(axis="y", alpha=0.3)
        for ax in (self.ax_pad, self.ax_seen):
            ax.set_xticks([])
            ax.set_yticks([])
        self.fig.suptitle(f"{model_name}: draw one digit, as large as the pad. Keys: c = clear, s = save as "
                          f"{DRAWING_FILE}, q = quit", fontsize=11)
        self.buttons = []  # a widget stops working once nothing refers to it, so keep them
        for i, (label, action) in enumerate((("Clear (c)", self.clear), ("Save (s)", self.save),
                                             ("Quit (q)", self.quit))):
            button = Button(self.fig.add_axes([0.02 + 0.105 * i, 0.04, 0.09, 0.07]), label)
            button.on_clicked(lambda event, action=action: action())
            self.buttons.append(button)
        self.show_answer(None)
        canvas = self.fig.canvas
        canvas.mpl_connect("button_press_event", self.press)
        canvas.mpl_connect("motion_notify_event", self.move)
        canvas.mpl_connect("button_release_event", self.release)
        canvas.mpl_connect("key_press_event", self.key)

    # The mouse: press starts a stroke, moving draws it, release ends it and asks the network.
    def press(self, event):
        if event.inaxes is self.ax_pad and event.button == 1 and event.xdata is not None:
            self.last = (event.xdata, event.ydata)
            self.paint(self.last, self.last)

    def move(self, event):
        if self.last is not None and event.inaxes is self.ax_pad and event.xdata is not None:
            self.paint(self.last, (event.xdata, event.ydata))
            self.last = (event.xdata, event.ydata)

    def release(self, event):
        if self.last is not None:
            self.last = None
            self.classify()

    def key(self, event):
        actions = {"c": self.clear, "s": self.save, "q": self.quit}
        if event.key in actions:
            actions[event.key]()

    def paint(self, start, end):
        """A round brush from start to end (pad pixels, x right, y down), stamped every half radius."""
        (x0, y0), (x1, y1) = start, end
        steps = max(1, int(np.hypot(x1 - x0, y1 - y0) / (BRUSH / 2)))
        rows, cols = np.ogrid[:PAD_PIXELS, :PAD_PIXELS]
        for t in np.linspace(0, 1, steps + 1):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            self.ink[(rows - y) ** 2 + (cols - x) ** 2 <= BRUSH ** 2] = 1.0
        self.pad_image.set_data(1 - self.ink)
        self.fig.canvas.draw_idle()

    def drawing_png(self, path: Path) -> Path:
        """The drawing as a picture on paper: black ink on white, like a scan of your handwriting."""
        from PIL import Image

        Image.fromarray((255 * (1 - self.ink)).astype(np.uint8)).save(path)
        return path

    def classify(self):
        """The same steps as --image: prepare the picture, predict, show both."""
        path = self.drawing_png(Path(self._tmp.name) / DRAWING_FILE)
        try:
            _, digit28, tensor = dl_utils.prepare_digit_image(path, **self.normalization)
        except dl_utils.CourseError:  # a dot too small to be a digit: wait for more strokes
            return self.show_answer(None)
        probabilities = dl_utils.predict_digit(self.model, tensor, device=self.device)
        self.seen_image.set_data(digit28)
        self.show_answer(probabilities)
        digit, confidence = int(probabilities.argmax()), float(probabilities.max())
        self.predictions.append((digit, confidence))
        print(f"stroke {len(self.predictions)}: {digit} ({100 * confidence:.1f}%)", flush=True)

    def show_answer(self, probabilities):
        values = np.zeros(10) if probabilities is None else 100 * probabilities.numpy()
        for digit, (bar, value) in enumerate(zip(self.bars, values)):
            bar.set_height(value)
            bar.set_color("tab:green" if probabilities is not None and digit == values.argmax() else "tab:gray")
        self.ax_bars.set_title("draw a digit" if probabilities is None else
                               f"prediction: {values.argmax()} ({values.max():.1f}%)", fontsize=14)
        self.fig.canvas.draw_idle()

    def clear(self):
        self.ink[:] = 0
        self.pad_image.set_data(1 - self.ink)
        self.seen_image.set_data(np.zeros((28, 28)))
        self.show_answer(None)

    def save(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.drawing_png(self.out_dir / DRAWING_FILE)
        print(f"Saved {path}: try it with python 04_load_model.py --image {path}", flush=True)

    def quit(self):
        import matplotlib.pyplot as plt

        plt.close(self.fig)

    def show(self):
        """Open the window; returns when it is closed."""
        import matplotlib.pyplot as plt

        plt.show()


def interactive_backend() -> bool:
    """Can matplotlib open a window here? Agg (no screen: a server, SSH, CI) only draws into files."""
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    return matplotlib.get_backend().lower() in backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def draw(model, checkpoint: dict, *, out_dir: Path, device) -> dict:
    no_window = ("python 04_load_model.py --draw needs a window, and matplotlib cannot open one here ({why}). "
                 "That happens on a server, over SSH without X forwarding, or with MPLBACKEND=Agg. Run it on a "
                 "computer with a screen, or draw your digit in any paint program, save it as a PNG and run "
                 "python 04_load_model.py --image my_digit.png: the same preparation, the same network.")
    if not interactive_backend():
        import matplotlib

        raise dl_utils.CourseError(no_window.format(why=f"its backend is {matplotlib.get_backend()}, "
                                                        "which only writes files"))
    try:
        pad = DrawingPad(model, normalization=checkpoint["normalization"], out_dir=out_dir,
                         model_name=checkpoint["arch"], device=device)
    except Exception as error:  # e.g. Tk's "no display name and no $DISPLAY environment variable"
        raise dl_utils.CourseError(no_window.format(why=f"{type(error).__name__}: {error}")) from None
    print("\nDraw a digit in the window (left mouse button). After each stroke you see what the network sees "
          "and its answer. Keys: c clear, s save, q quit.")
    pad.show()
    return {"checkpoint_arch": checkpoint["arch"], "drawn_predictions": pad.predictions}


def main(argv=None) -> dict:
    args = dl_utils.parse_args(build_parser(), argv)
    settings = dl_utils.settings_from_args(args)  # every flag as parsed: recorded with the results, none left out
    model_path = args.model or args.out_dir / MODEL_FILE
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    checkpoint = open_checkpoint(model_path)  # section 2
    # 03 and 06 record every flag in the checkpoint; --pixels shuffled means the model only ever saw
    # digits with their 784 pixels moved by one fixed permutation, so it must be shown them that way again.
    pixels = checkpoint.get("hyperparameters", {}).get("pixels", "natural")
    if pixels != "natural" and (args.image is not None or args.draw):
        raise dl_utils.CourseError(
            f"{model_path} was trained with --pixels {pixels}: it has only ever seen digits whose pixels were moved "
            "by one fixed permutation, so a picture of your own digit means nothing to it. Use a checkpoint "
            "trained on natural pixels (python 03_train_mnist.py or 06_cnn_mnist.py without --pixels) for "
            "--image and --draw.")
    if args.image is not None:  # a missing or unreadable picture: say so now, not after the test set
        dl_utils.prepare_digit_image(args.image, **checkpoint["normalization"])
    model = rebuild(checkpoint, model_path, hidden=args.hidden, batch_norm=args.batch_norm, device=device)  # 3
    if args.draw:  # section 9: straight to the drawing pad, no test set needed
        return draw(model, checkpoint, out_dir=args.out_dir, device=device)
    mismatch_error = show_mismatch(checkpoint, hidden=args.hidden, batch_norm=args.batch_norm)  # section 4

    # -----------------------------------------------------------------------
    # 5. Same model, same data, same accuracy
    # -----------------------------------------------------------------------
    # We normalise the test images with the statistics stored in the
    # checkpoint (and shuffle their pixels as in training, if it was trained
    # so): a model must see its inputs exactly as it saw them in training.
    data = dl_utils.load_mnist_data(args.data_dir, seed=args.seed, device=device,
                                    normalization=checkpoint["normalization"], pixels=pixels)
    test = dl_utils.evaluate_model(model, data.test_loader, loss_fn=torch.nn.CrossEntropyLoss(), device=device)
    saved_accuracy = checkpoint["metrics"].get("test_accuracy")
    identical = saved_accuracy is not None and abs(test["accuracy"] - saved_accuracy) < 1e-9
    print(f"\nTest accuracy of the reloaded model: {100 * test['accuracy']:.2f}% "
          f"({'06' if checkpoint['arch'] == 'CNN' else '03'} measured {100 * saved_accuracy:.2f}% before saving: "
          f"{'identical' if identical else 'DIFFERENT - was the model trained on another data set?'})")

    probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
    plot_path = inside_one_prediction(model, data, probabilities, labels, arch=checkpoint["arch"],  # section 6
                                      accuracy=test["accuracy"], out_dir=args.out_dir, show=args.show)
    two_ways_to_save(model, model_path, device)  # section 7

    # -----------------------------------------------------------------------
    # 8. Your own digit
    # -----------------------------------------------------------------------
    # MNIST digits are white on black, 20x20 inside 28x28, centred by their
    # centre of mass; dl_utils.prepare_digit_image makes any picture look like
    # that before the model sees it.
    own = {}
    if args.image is not None:
        own = dl_utils.classify_own_digit(model, args.image, normalization=checkpoint["normalization"], device=device,
                                          out_path=args.out_dir / "own_digit.png", model_name=checkpoint["arch"],
                                          show=args.show)
        print("\n" + own.pop("report"))

    results = {"script": "04_load_model", "checkpoint": str(model_path), "arch": checkpoint["arch"],
               "device": dl_utils.device_name(device), "settings": settings,
               "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "checkpoint_test_accuracy": saved_accuracy, "identical_to_checkpoint": identical,
               "parameters": dl_utils.count_parameters(model), "architecture_mismatch_error": mismatch_error, **own}
    dl_utils.save_results(args.out_dir, "04_load_model", results)
    print(f"\nSaved {plot_path.name} and 04_load_model.json in {args.out_dir}")
    print("Next: python 05_experiment_architectures.py (or draw a digit: python 04_load_model.py --draw)")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
