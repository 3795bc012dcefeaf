"""04 - Load a trained model and use it.

What you will learn
  * what a checkpoint holds, and why loading weights needs the model's code
  * why the architecture must match: PyTorch's real error when it does not
  * model.eval() and torch.no_grad() for inference, and that a reloaded model
    gives exactly the same test accuracy as when it was saved
  * logits -> softmax -> prediction with a confidence
  * the two ways to save a model (state_dict vs the whole object), and why
    this course saves state_dicts and loads them with weights_only=True

Run first: 03_train_mnist.py (it writes outputs/mnist_model.pth).

Run it
    python 04_load_model.py                          # load, evaluate, explain
    python 04_load_model.py --image my_digit.png     # what does it say about YOUR handwriting?
    python 04_load_model.py --hidden 256 --model outputs/big.pth   # a model trained with --hidden 256
    python 04_load_model.py --model outputs/cnn_model.pth --image my_digit.png   # 06's CNN, no retraining
    python 04_load_model.py --data-dir ../shared/data              # MNIST kept elsewhere

Writes (in outputs/, or --out-dir)
    predictions.png        test digits with the prediction and its confidence
    04_load_model.json     the reloaded test accuracy, next to 03's
    own_digit.png          with --image: your picture, what the network saw, its probabilities

How long: 5.2 s measured on the course's 2-core CPU (it trains nothing).
"""

import argparse
import tempfile
from pathlib import Path

import torch

import dl_utils

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
HIDDEN = 128  # must equal the --hidden the checkpoint was trained with (03's default is 128)
MODEL_FILE = "mnist_model.pth"  # what 03_train_mnist.py writes in its out-dir
N_FIRST, N_UNSURE = 8, 4  # predictions.png: the first 8 test digits + the 4 the model is least sure of
SEED = 0

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


def main(argv=None) -> dict:
    args = dl_utils.parse_args(build_parser(), argv)
    model_path = args.model or args.out_dir / MODEL_FILE
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    # -----------------------------------------------------------------------
    # 2. Open the checkpoint: a dict, not just weights
    # -----------------------------------------------------------------------
    # dl_utils.load_checkpoint uses torch.load(weights_only=True): a .pth is a
    # pickle, and an untrusted pickle can run code when loaded; weights_only
    # allows tensors and plain containers only.
    checkpoint = dl_utils.load_checkpoint(model_path)
    print(f"\nCheckpoint {model_path} (torch {checkpoint['torch_version']}):")
    for key in ("arch", "model_config", "hyperparameters", "metrics", "normalization"):
        print(f"  {key:16s} {checkpoint[key]}")
    print(f"  state_dict       " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in checkpoint["state_dict"].items()))
    if args.image is not None:  # a missing or unreadable picture: say so now, not after the test set
        dl_utils.prepare_digit_image(args.image, **checkpoint["normalization"])

    # -----------------------------------------------------------------------
    # 3. Rebuild the architecture from OUR settings, then load the weights
    # -----------------------------------------------------------------------
    model = build_model(checkpoint, hidden=args.hidden, batch_norm=args.batch_norm)
    if checkpoint["arch"] not in ("SimpleNN", "CNN") or dl_utils.state_dict_mismatches(model, checkpoint["state_dict"]):
        raise dl_utils.CourseError(explain_mismatch(model, checkpoint, model_path))
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device)
    # eval(): dropout off, batch norm uses its saved running statistics.
    # Forgetting it is a classic bug: predictions then vary from run to run.
    model.eval()

    # -----------------------------------------------------------------------
    # 4. What if the architecture does not match? PyTorch's own words
    # -----------------------------------------------------------------------
    # A model with 64 hidden neurons has a (64, 784) first weight matrix; the
    # saved one is (hidden, 784). There is nowhere to put the extra numbers,
    # so load_state_dict refuses, listing every layer that does not fit. (For
    # 06's CNN checkpoint the layer names differ too: "Unexpected key(s)".)
    wrong_hidden = 64 if args.hidden != 64 else 32
    try:
        SimpleNN(hidden=wrong_hidden, batch_norm=args.batch_norm).load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        mismatch_error = str(error)
        print(f"\nLoading into SimpleNN(hidden={wrong_hidden}) on purpose fails; PyTorch says:\n  "
              + "\n  ".join(mismatch_error.strip().splitlines()))
        print("Fix: build the model the checkpoint names (arch) with the settings it was trained with "
              "(model_config): that is why the course saves both next to the weights.")

    # -----------------------------------------------------------------------
    # 5. Same model, same data, same accuracy
    # -----------------------------------------------------------------------
    # We normalise the test images with the statistics stored in the
    # checkpoint: a model must see its inputs exactly as it saw them in training.
    data = dl_utils.load_mnist_data(args.data_dir, seed=args.seed, device=device,
                                    normalization=checkpoint["normalization"])
    test = dl_utils.evaluate_model(model, data.test_loader, loss_fn=torch.nn.CrossEntropyLoss(), device=device)
    saved_accuracy = checkpoint["metrics"].get("test_accuracy")
    identical = saved_accuracy is not None and abs(test["accuracy"] - saved_accuracy) < 1e-9
    print(f"\nTest accuracy of the reloaded model: {100 * test['accuracy']:.2f}% "
          f"({'06' if checkpoint['arch'] == 'CNN' else '03'} measured {100 * saved_accuracy:.2f}% before saving: "
          f"{'identical' if identical else 'DIFFERENT - was the model trained on another data set?'})")

    # -----------------------------------------------------------------------
    # 6. Inside one prediction: logits -> softmax -> digit
    # -----------------------------------------------------------------------
    # Confidence is the largest softmax probability. High confidence is not
    # proof of being right, but the digits the model is least sure about are
    # where its mistakes hide: predictions.png shows some of each.
    probabilities, labels = dl_utils.collect_predictions(model, data.test_loader, device=device)
    confidence = probabilities.max(dim=1).values
    least_sure = confidence.argsort()[:N_UNSURE]
    for name, index in (("the first test digit", 0), ("the test digit it is least sure about", least_sure[0].item())):
        with torch.no_grad():
            logits = model(data.test_loader.images[index:index + 1])[0].cpu()  # (10,) raw scores
        probs = torch.softmax(logits, dim=0)  # exp(logit) / sum(exp(logits)): positive, sums to 1
        print(f"\nInside one prediction: {name} (#{index}, true label {labels[index].item()})")
        print("  digit         " + " ".join(f"{d:6d}" for d in range(10)))
        print("  logits        " + " ".join(f"{v:6.2f}" for v in logits.tolist()))
        print("  softmax (%)   " + " ".join(f"{100 * v:6.1f}" for v in probs.tolist()) + f"   sum = {probs.sum():.3f}")
        print(f"  prediction    {probs.argmax().item()}, confidence {100 * probs.max():.1f}%")
    shown = torch.cat([torch.arange(N_FIRST), least_sure])
    plot_path = dl_utils.plot_prediction_grid(
        data.test_loader.images[shown.to(device)].cpu(), labels[shown], probabilities[shown],
        args.out_dir / "predictions.png", mean=data.mean, std=data.std, show=args.show,
        title=f"{checkpoint['arch']} (test accuracy {100 * test['accuracy']:.2f}%): the first {N_FIRST} test digits, "
              f"then the {N_UNSURE} it is least sure about (red = wrong)")

    # -----------------------------------------------------------------------
    # 7. Two ways to save a model
    # -----------------------------------------------------------------------
    # (a) torch.save(model.state_dict()) - what this course does (inside a dict
    #     with the config): only tensors, loadable with weights_only=True, and
    #     still loadable after you rename files or refactor the class.
    # (b) torch.save(model) - pickles the whole object. Convenient, but the
    #     pickle refers to the class by its module path, so it breaks when the
    #     code moves, and it can only be opened with weights_only=False, which
    #     would also run any code an attacker hid in the file.
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

    results = {"script": "04_load_model", "checkpoint": str(model_path), "arch": checkpoint["arch"],
               "device": dl_utils.device_name(device),
               "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "checkpoint_test_accuracy": saved_accuracy, "identical_to_checkpoint": identical,
               "parameters": dl_utils.count_parameters(model), "architecture_mismatch_error": mismatch_error}

    # -----------------------------------------------------------------------
    # 8. Your own digit
    # -----------------------------------------------------------------------
    # MNIST digits are white on black, 20x20 inside 28x28, centred by their
    # centre of mass; dl_utils.prepare_digit_image makes any picture look like
    # that before the model sees it.
    if args.image is not None:
        own = dl_utils.classify_own_digit(model, args.image, normalization=checkpoint["normalization"], device=device,
                                          out_path=args.out_dir / "own_digit.png", model_name=checkpoint["arch"],
                                          show=args.show)
        print("\n" + own.pop("report"))
        results.update(own)

    dl_utils.save_results(args.out_dir, "04_load_model", results)
    print(f"\nSaved {plot_path.name} and 04_load_model.json in {args.out_dir}")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
