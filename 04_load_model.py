"""04 - Load a trained model and use it.

What you will learn
  * a checkpoint holds numbers, not code: define the exact same architecture first, then load the weights
  * why the architecture must match (PyTorch's own error), and how the checkpoint's model_config avoids it
  * model.eval() and torch.no_grad() for inference: the reloaded model scores exactly what 03 measured
  * logits -> softmax -> a prediction with a confidence; the two ways to save a model (weights_only=True)
  * your own handwriting: a picture (--image) or drawn live with the mouse (--draw, extras/draw.py)

Run first: 03_train_mnist.py (it writes outputs/mnist_model.pth).

Run it
    python 04_load_model.py                          # load, evaluate, explain
    python 04_load_model.py --quick                  # the same run: 04 trains nothing, so it is quick already
    python 04_load_model.py --image my_digit.png     # only your picture: its prediction, and own_digit.png
    python 04_load_model.py --draw                   # draw a digit with the mouse, watch the prediction
    python 04_load_model.py --model outputs/cnn_model.pth --draw   # the same with 06's CNN, no retraining
    python 04_load_model.py --hidden 64              # rebuild the wrong size on purpose: PyTorch refuses
    python 04_load_model.py --data-dir DATA_DIR      # MNIST kept elsewhere

Writes (in outputs/, or --out-dir)
    predictions.png        test digits with the prediction and its confidence
    04_load_model.json     the reloaded test accuracy, next to 03's
    own_digit.png          with --image (and nothing else): your picture, what the network saw, its probabilities
    drawn_digit.png        with --draw, when you press s: your drawing, ready for --image

How long: a few seconds on a 2-core CPU (it trains nothing). --image and --draw need no MNIST.
"""

import tempfile
import textwrap
from pathlib import Path

import torch
from torch import nn

import dl_utils
from extras import draw  # the --draw pad: a matplotlib application of its own, outside the lesson

# ---------------------------------------------------------------------------
# Settings (each has a flag; see --help)
# ---------------------------------------------------------------------------
HIDDEN = 0  # 0 = the SimpleNN size the checkpoint records; another number builds that size: watch PyTorch refuse
BATCH_NORM = False  # rebuild with a batch-norm layer even if the checkpoint has none (one it has is read from it)
SEED = 0  # 04 trains nothing and draws nothing at random; kept so that every lesson takes --seed
SETTINGS = dl_utils.collect_settings(globals())
default_checkpoint = "mnist_model.pth"  # what 03_train_mnist.py writes in its out-dir


# ---------------------------------------------------------------------------
# 1. The model's code: the exact same architecture as 03's
# ---------------------------------------------------------------------------
# A checkpoint stores numbers (the state_dict: layer name -> tensor), not
# code. To use it you first build the same network in Python, then pour the
# numbers in. So here is 03's SimpleNN again, a copy, line for line: a lesson
# never imports another lesson, and in your own project this class would live
# in one model.py that training and inference both import. A test
# (tests/test_toolbox.py) fails if this copy and 03's ever differ.
class SimpleNN(nn.Module):
    def __init__(self, hidden: int = 128, dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)  # checkpoint keys fc1.weight (hidden, 784) and fc1.bias (hidden,)
        # With batch norm: norm.weight, norm.bias and its running mean and variance, saved with the rest.
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else None
        self.relu = nn.ReLU()  # no weights, so nothing of it in the checkpoint
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None  # no weights either; off after model.eval()
        self.fc2 = nn.Linear(hidden, 10)  # fc2.weight (10, hidden) and fc2.bias (10,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x.flatten(start_dim=1))  # (B, 1, 28, 28) -> (B, 784) -> (B, hidden)
        if self.norm is not None:
            x = self.norm(x)
        x = self.relu(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc2(x)  # (B, 10) logits


# 06's CNN needs its class too: it is harvested into the toolbox as
# dl_utils.CNN ("written in 06"), so 04 can rebuild it without importing 06.


# ---------------------------------------------------------------------------
# 2. Open the checkpoint: a dict, not just weights
# ---------------------------------------------------------------------------
# dl_utils.load_checkpoint uses torch.load(weights_only=True): a .pth is a
# pickle, and an untrusted pickle can run code when loaded; weights_only
# allows tensors and plain containers only.
def describe_checkpoint(checkpoint: dict, path: Path) -> None:
    print(f"Checkpoint {path} (saved with torch {checkpoint.get('torch_version')}):")
    for key in ("arch", "model_config", "hyperparameters", "metrics", "normalization"):
        print(textwrap.fill(f"  {key:16s} {checkpoint.get(key)}", width=120, subsequent_indent=" " * 19))
    shapes = ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in checkpoint["state_dict"].items())
    print(textwrap.fill(f"  {'state_dict':16s} {shapes}", width=120, subsequent_indent=" " * 19))


# ---------------------------------------------------------------------------
# 3. Build the same architecture, then load the weights
# ---------------------------------------------------------------------------
# "arch" names the class and "model_config" its arguments, e.g.
# {"hidden": 128, "dropout": 0.0, "batch_norm": False}: that is all it takes
# to build the empty network the numbers fit into. --hidden and --batch-norm
# override them: a checkpoint made elsewhere rarely records its config, so
# typing the wrong size is the mistake everyone makes once; here you can make
# it on purpose and read PyTorch's refusal, explained.
def build_model(checkpoint: dict, *, hidden: int = 0, batch_norm: bool = False) -> nn.Module:
    config = dict(checkpoint["model_config"])
    if checkpoint["arch"] == "CNN":
        return dl_utils.CNN(**config)
    if checkpoint["arch"] != "SimpleNN":
        raise dl_utils.CourseError(
            f"This checkpoint holds a {checkpoint['arch']} model; 04 rebuilds 03's SimpleNN and 06's CNN only. "
            "A checkpoint can only be loaded into the architecture that produced it: build that class, "
            "then call load_state_dict.")
    config["hidden"] = hidden or config["hidden"]
    config["batch_norm"] = batch_norm or config.get("batch_norm", False)
    return SimpleNN(**config)


def rebuild(checkpoint: dict, path: Path, *, hidden: int, batch_norm: bool, device) -> nn.Module:
    model = build_model(checkpoint, hidden=hidden, batch_norm=batch_norm)
    try:  # copies every saved tensor into the layer of the same name; each shape must fit
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise dl_utils.CourseError(explain_mismatch(error, checkpoint, path, hidden, batch_norm)) from None
    # eval(): dropout off, batch norm uses its saved running statistics.
    # Forgetting it is a classic bug: predictions then vary from run to run.
    return model.to(device).eval()


def explain_mismatch(error: RuntimeError, checkpoint: dict, path: Path, hidden: int, batch_norm: bool) -> str:
    """PyTorch's refusal, then one paragraph: what differs, and the fix."""
    said = "\n  ".join(str(error).strip().splitlines())
    if checkpoint["arch"] == "CNN":
        return (f"PyTorch cannot load {path} into the CNN class of dl_utils (06's):\n  {said}\nWas 06's network "
                "changed after this model was trained? Retrain it: python 06_cnn_mnist.py")
    config = checkpoint["model_config"]
    asked = " ".join(([f"--hidden {hidden}"] if hidden else []) + (["--batch-norm"] if batch_norm else []))
    fix = (f"Fix: leave out {asked}; 04 then builds what model_config says." if asked else
           "Yet 04 built exactly that: was SimpleNN changed after this model was trained? Retrain it: "
           "python 03_train_mnist.py")
    return (f"PyTorch cannot load {path} into the SimpleNN built{' with ' + asked if asked else ''}:\n  {said}\n"
            f"Read it as: the checkpoint was trained as SimpleNN(hidden={config['hidden']}, "
            f"batch_norm={config.get('batch_norm', False)}) (its model_config), and every saved tensor needs a "
            f"layer of the same name and shape. {fix}")


# ---------------------------------------------------------------------------
# 4. What if the architecture does not match? PyTorch's own words
# ---------------------------------------------------------------------------
# A model with 64 hidden neurons has a (64, 784) first weight matrix; the
# saved one is (hidden, 784). There is nowhere to put the extra numbers,
# so load_state_dict refuses, listing every layer that does not fit. (For
# 06's CNN checkpoint the layer names differ too: "Unexpected key(s)".)
def show_mismatch(checkpoint: dict) -> str:
    config = checkpoint["model_config"]
    wrong_hidden = 32 if config.get("hidden") == 64 else 64
    try:
        SimpleNN(hidden=wrong_hidden, batch_norm=config.get("batch_norm", False)).load_state_dict(
            checkpoint["state_dict"])
    except RuntimeError as error:
        print(f"Loading into SimpleNN(hidden={wrong_hidden}) on purpose fails; PyTorch says:\n  "
              + "\n  ".join(str(error).strip().splitlines()))
        print("Fix: build the model the checkpoint names (arch) with the settings it was trained with "
              "(model_config): that is why the course saves both next to the weights.")
        return str(error)
    return ""


# ---------------------------------------------------------------------------
# 5. Same model, same data, same accuracy
# ---------------------------------------------------------------------------
# The test images are normalised with the statistics stored in the
# checkpoint (and their pixels shuffled as in training, if it was trained
# so): a model must see its inputs exactly as it saw them in training.
# dl_utils.evaluate (written in 03) runs the model in eval() mode under
# torch.inference_mode(), no_grad's stricter sibling: no graph is recorded.
def test_again(model, checkpoint: dict, *, data_dir, seed: int, device) -> tuple:
    data = dl_utils.load_mnist_data(data_dir, seed=seed, device=device, normalization=checkpoint["normalization"],
                                    pixels=checkpoint.get("hyperparameters", {}).get("pixels", "natural"))
    test = dl_utils.evaluate(model, data.test_loader, nn.CrossEntropyLoss())
    saved = checkpoint["metrics"].get("test_accuracy")
    identical = saved is not None and abs(test["accuracy"] - saved) < 1e-9
    print(f"Test accuracy of the reloaded model: {100 * test['accuracy']:.2f}% "
          f"({'06' if checkpoint['arch'] == 'CNN' else '03'} measured {100 * (saved or 0):.2f}% before saving: "
          f"{'identical' if identical else 'DIFFERENT - was the model trained on another data set?'})")
    return data, test, saved, identical


# ---------------------------------------------------------------------------
# 6. Inside one prediction: logits -> softmax -> digit
# ---------------------------------------------------------------------------
# Confidence is the largest softmax probability. High confidence is not
# proof of being right, but the digits the model is least sure about are
# where its mistakes hide: predictions.png shows a row of each.
def inside_one_prediction(model, data, *, arch: str, accuracy: float, out_dir: Path, show: bool,
                          n_first: int = 6, n_unsure: int = 6) -> Path:
    device = data.test_loader.images.device
    probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)  # (N, 10), (N,)
    least_sure = probabilities.max(dim=1).values.argsort()[:n_unsure]
    for gap, name, index in (("", "the first test digit", 0),
                             ("\n", "the test digit it is least sure about", least_sure[0].item())):
        with torch.no_grad():  # inference: no gradients needed, so none are recorded
            logits = model(data.test_loader.images[index:index + 1])[0].cpu()  # (10,) raw scores
        probs = torch.softmax(logits, dim=0)  # exp(logit) / sum(exp(logits)): positive, sums to 1
        print(f"{gap}Inside one prediction: {name} (#{index}, true label {labels[index].item()})")
        print("  digit         " + " ".join(f"{d:6d}" for d in range(10)))
        print("  logits        " + " ".join(f"{v:6.2f}" for v in logits.tolist()))
        print("  softmax (%)   " + " ".join(f"{100 * v:6.1f}" for v in probs.tolist()) + f"   sum = {probs.sum():.3f}")
        print(f"  prediction    {probs.argmax().item()}, confidence {100 * probs.max():.1f}%")
    shown = torch.cat([torch.arange(n_first), least_sure])
    return dl_utils.plot_prediction_grid(
        data.test_loader.images[shown.to(device)].cpu(), labels[shown], probabilities[shown],
        out_dir / "predictions.png", mean=data.mean, std=data.std, show=show, columns=max(n_first, n_unsure),
        title=f"{arch} (test accuracy {100 * accuracy:.2f}%). Top row: the first {n_first} test digits. "
              f"Bottom row: the {n_unsure} it is least sure about (red = wrong)")


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
    print(f"Saving the whole model object: {whole_kb:.0f} KB; the course checkpoint: "
          f"{model_path.stat().st_size / 1024:.0f} KB. torch.load(weights_only=True) on the whole object: "
          f"{safe_load}, as it should be - only load whole pickled models you made yourself.")


# ---------------------------------------------------------------------------
# 8. Your own digit (--image) or one you draw (--draw)
# ---------------------------------------------------------------------------
# MNIST digits are white on black, 20x20 inside 28x28, centred by their
# centre of mass; dl_utils.prepare_digit_image makes any picture look like
# that before the model sees it. --draw sends every stroke through the same
# steps (extras/draw.py). Either is a mode of its own: the checkpoint, the
# rebuilt network, your digit, and none of the lesson's printout.
def your_digit(args, checkpoint: dict, model_path: Path, device) -> dict:
    pixels = checkpoint.get("hyperparameters", {}).get("pixels", "natural")
    if pixels != "natural":  # the model only ever saw digits with their 784 pixels moved by one fixed permutation
        raise dl_utils.CourseError(
            f"{model_path} was trained with --pixels {pixels}: it has only ever seen digits whose pixels were moved "
            "by one fixed permutation, so a picture of your own digit means nothing to it. Use a checkpoint "
            "trained on natural pixels (python 03_train_mnist.py or 06_cnn_mnist.py without --pixels) for "
            "--image and --draw.")
    model = rebuild(checkpoint, model_path, hidden=args.hidden, batch_norm=args.batch_norm, device=device)
    if args.draw:
        return draw.draw(model, checkpoint, out_dir=args.out_dir, device=device)
    out_path = args.out_dir / "own_digit.png"
    own = dl_utils.classify_own_digit(model, args.image, normalization=checkpoint["normalization"], device=device,
                                      out_path=out_path, model_name=checkpoint["arch"], show=args.show)
    print(f"{checkpoint['arch']} from {model_path} reads {args.image}:\n{own.pop('report')}")
    print(f"Saved {out_path}: your picture, the 28 x 28 the network saw, and its ten probabilities. "
          "If the middle one does not look like an MNIST digit, fix the picture before trusting the answer.")
    return {"script": "04_load_model", "checkpoint": str(model_path), "arch": checkpoint["arch"],
            "parameters": dl_utils.count_parameters(model), "own_digit_png": str(out_path), **own}


def main(argv=None) -> dict:
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__,
                                   types={"HIDDEN": dl_utils.non_negative_int})  # 0 = the checkpoint's size
    parser.add_argument("--model", type=Path, default=None,
                        help=f"checkpoint to load (default: <out-dir>/{default_checkpoint}; 06 writes cnn_model.pth)")
    parser.add_argument("--image", type=Path, default=None,
                        help="a PNG/JPEG of your own handwritten digit: 04 reads only that and writes own_digit.png")
    parser.add_argument("--draw", action="store_true",
                        help="draw digits with the mouse and watch the prediction (extras/draw.py; needs a screen)")
    parser.add_argument("--quick", action="store_true", help="the same run: 04 trains nothing, so it is quick already")
    args = dl_utils.parse_args(parser, argv)
    config = dl_utils.settings_from_args(args)  # every setting of this run, recorded with the results
    model_path = args.model or args.out_dir / default_checkpoint
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    checkpoint = dl_utils.load_checkpoint(model_path)
    if args.image is not None or args.draw:  # section 8, straight away: no test set needed
        return your_digit(args, checkpoint, model_path, device)

    dl_utils.step("1. The model's code")
    print(f"SimpleNN, a copy of 03's class (top of this file); 06's CNN is dl_utils.CNN. Device: {device} ({why})")

    dl_utils.step("2. Open the checkpoint")
    describe_checkpoint(checkpoint, model_path)

    dl_utils.step("3. Build the same architecture, then load the weights")
    model = rebuild(checkpoint, model_path, hidden=args.hidden, batch_norm=args.batch_norm, device=device)
    print(f"{model}\nLoaded {len(checkpoint['state_dict'])} tensors ({dl_utils.count_parameters(model):,} "
          "parameters); model.eval() set dropout and batch norm, where it has them, to inference.")

    dl_utils.step("4. What if the architecture does not match?")
    mismatch_error = show_mismatch(checkpoint)

    dl_utils.step("5. Same model, same data, same accuracy")
    data, test, saved_accuracy, identical = test_again(model, checkpoint, data_dir=args.data_dir, seed=args.seed,
                                                       device=device)

    dl_utils.step("6. Inside one prediction: logits -> softmax -> digit")
    plot_path = inside_one_prediction(model, data, arch=checkpoint["arch"], accuracy=test["accuracy"],
                                      out_dir=args.out_dir, show=args.show)

    dl_utils.step("7. Two ways to save a model")
    two_ways_to_save(model, model_path, device)

    results = {"script": "04_load_model", "checkpoint": str(model_path), "arch": checkpoint["arch"],
               "device": dl_utils.device_name(device), "settings": config,
               "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "checkpoint_test_accuracy": saved_accuracy, "identical_to_checkpoint": identical,
               "parameters": dl_utils.count_parameters(model), "architecture_mismatch_error": mismatch_error}
    dl_utils.save_results(args.out_dir, "04_load_model", results)
    print(f"\nSaved {plot_path.name} and 04_load_model.json in {args.out_dir}")
    print("Next: python 05_experiment_architectures.py (or your own digit: python 04_load_model.py --draw, "
          "or --image my_digit.png)")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
