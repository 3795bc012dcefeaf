"""How would YOU tell a computer what a 0 or an 8 looks like? Rules written by hand, against 03's MLP.

Nielsen's book ("Neural Networks and Deep Learning", ch. 1) measures such baselines. Each rule is a few
lines of plain tensor code, from the dumbest to the cleverest:
  1. most_common_digit      always the digit seen most in training: the floor every classifier must beat
  2. ink                    mean brightness -> the digit whose training images' mean brightness is nearest
  3. holes_0_vs_8           a 0 encloses one hole, an 8 two: count them with a flood fill (0s and 8s only)
  4. holes_and_size_0_vs_8  ... and an 8 with an open loop still has one SMALL hole; a 0's hole is big
  5. template               each digit's mean training image; answer the nearest one
  6. deskewed_template      the same after straightening each digit's slant, optionally blurred
Every choice (ink threshold, distance, blur) is made on the 5,000 VALIDATION images; the 10,000 test
images are read once, at the end. The MLP: 03's specification, one run per seed (the rules have no seed).

    python benchmarks/baseline_rules.py --data-dir DATA_DIR     # 1-1.5 min on a 2-core CPU, mostly the MLP
    python benchmarks/run_all.py --data-dir DATA_DIR --only baseline_rules    # into docs/results
Writes <out-dir>/baseline_rules.json: every accuracy, every choice with its candidates, the machine.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import dl_utils from the repository root
import dl_utils  # noqa: E402

THRESHOLDS = (0.1, 0.25, 0.5, 0.75)  # rules 3-4: a pixel brighter than this is ink (pixels run from 0 to 1)
SMALL_HOLES = (0, 10, 20, 30, 40)  # rule 4: ONE hole smaller than this many pixels means an 8 (0 = rule 3)
DISTANCES = ("euclidean", "correlation")  # rules 5-6: how "near" an image is to a template
BLURS = (0, 1, 2)  # rule 6: blur radius in pixels (0 = none), for images and templates alike


def pixels(loader, data) -> torch.Tensor:
    """A loader's images back in [0, 1], (N, 28, 28) on the CPU: load_mnist_data had normalised them."""
    return (loader.images[:, 0].cpu() * data.std + data.mean).clamp(0, 1)


def accuracy(predictions, labels) -> float:
    return int((predictions.cpu() == labels.cpu()).sum()) / len(labels)  # e.g. 9737 / 10000 = 0.9737


def choose(candidates: dict, images, labels) -> tuple:
    """The candidate with the best VALIDATION accuracy (the first on a tie), and every candidate's score."""
    scores = {name: accuracy(rule(images), labels) for name, rule in candidates.items()}
    return max(scores, key=scores.get), scores


# Rule 1: never look at the image.
def most_common_digit(train_labels):
    digit = int(torch.bincount(train_labels).argmax())  # a 1: the digit written most often
    return lambda images: torch.full((len(images),), digit)


# Rule 2 (Nielsen's): a 1 uses little ink, a 0 a lot; answer the digit whose average ink is nearest.
def ink_rule(train_images, train_labels):
    ink = train_images.mean(dim=(1, 2))  # (N,) each training image's mean brightness
    digit_ink = torch.stack([ink[train_labels == d].mean() for d in range(10)])  # (10,) one per digit
    return lambda images: (images.mean(dim=(1, 2))[:, None] - digit_ink).abs().argmin(dim=1)


# Rules 3-4: holes. Pour water in from outside the picture: it flows up, down, left and right across the
# paper, never through ink (nor diagonally between two ink pixels). Paper it cannot reach is a hole.
def hole_sizes(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N, 28, 28) -> (N, 784): each hole's size in pixels, filed under its first pixel (0 everywhere else).

    Paper pixel i starts as number i, ink as 784, the frame around the picture as -1. Each round every paper
    pixel takes the smallest number among itself and its 4 neighbours, until nothing changes (a flood fill):
    paper that touches the outside ends at -1, each hole at the number of its first pixel."""
    paper, ink = images < threshold, 28 * 28.0
    region = torch.where(paper, torch.arange(ink).view(1, 28, 28), ink)
    while True:
        framed = F.pad(region, (1, 1, 1, 1), value=-1.0)  # (N, 30, 30): the outside all around
        neighbours = [framed[:, :-2, 1:-1], framed[:, 2:, 1:-1], framed[:, 1:-1, :-2], framed[:, 1:-1, 2:]]
        flooded = torch.where(paper, torch.stack([region, *neighbours]).amin(dim=0), ink)
        if torch.equal(flooded, region):
            break
        region = flooded
    region = region.flatten(1)
    in_a_hole = ((region >= 0) & (region < ink)).float()
    return torch.zeros_like(region).scatter_add_(1, region.clamp(0, ink - 1).long(), in_a_hole)  # count them


def holes_rule(threshold: float, small_hole: int):
    """8 if two or more holes, or one hole smaller than `small_hole` pixels (0: never); else 0."""
    def predict(images):
        sizes = hole_sizes(images, threshold)
        holes, biggest = (sizes > 0).sum(dim=1), sizes.max(dim=1).values
        return torch.where((holes >= 2) | ((holes == 1) & (biggest < small_hole)), 8, 0)
    return predict


# Rules 5-6: templates. The average of all training 3s is a blurry 3; answer the digit whose average is nearest.
def templates(train_images, train_labels) -> torch.Tensor:
    return torch.stack([train_images[train_labels == d].mean(dim=0) for d in range(10)])  # (10, 28, 28)


def template_rule(digit_templates, distance: str, prepare=lambda images: images):
    """Nearest template, after `prepare`: the smallest Euclidean distance, or the largest correlation (the
    pattern, not the amount of ink: each image minus its mean, divided by its length, then a dot product)."""
    def unit(images):
        x = prepare(images).flatten(1)  # (N, 784)
        x = x - x.mean(dim=1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True)
    if distance == "euclidean":
        return lambda images: torch.cdist(prepare(images).flatten(1), prepare(digit_templates).flatten(1)).argmin(1)
    return lambda images: (unit(images) @ unit(digit_templates).T).argmax(dim=1)


def deskew(images: torch.Tensor) -> torch.Tensor:
    """Shear each digit sideways until its ink stands upright (a classic MNIST trick, from image moments).

    slant = covariance(x, y) / variance(y) of the ink: how many pixels it moves right per pixel down.
    """
    rows, cols = torch.arange(28.0).view(1, 28, 1), torch.arange(28.0).view(1, 1, 28)
    mass = images.sum(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    cy, cx = (images * rows).sum(dim=(1, 2), keepdim=True) / mass, (images * cols).sum(dim=(1, 2), keepdim=True) / mass
    slant = ((images * (rows - cy) * (cols - cx)).sum(dim=(1, 2))
             / (images * (rows - cy) ** 2).sum(dim=(1, 2)).clamp_min(1e-6))  # (N,)
    # affine_grid counts in [-1, 1] (pixel y sits at (y + 0.5) / 14 - 1): output (x, y) reads x + slant * (y - cy).
    theta = torch.zeros(len(images), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 1] = 1, 1, slant
    theta[:, 0, 2] = -slant * ((cy.flatten() + 0.5) / 14 - 1)
    grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
    return F.grid_sample(images.unsqueeze(1), grid, align_corners=False).squeeze(1)


def blur(images: torch.Tensor, radius: int) -> torch.Tensor:
    """Each pixel -> the mean of the (2 radius + 1) x (2 radius + 1) square around it (radius 0: unchanged)."""
    if radius == 0:
        return images
    return F.avg_pool2d(images.unsqueeze(1), 2 * radius + 1, 1, radius, count_include_pad=False).squeeze(1)


def build_rules(train, train_labels, val, val_labels) -> dict:
    """Every rule from the training images; each keeps the candidate that scores best on VALIDATION."""
    val_08 = (val_labels == 0) | (val_labels == 8)  # the two-class rules see only 0s and 8s
    straight = deskew(train)
    candidates = {  # rule -> (its candidates, two-class?)
        "most_common_digit": ({"nothing to choose": most_common_digit(train_labels)}, False),
        "ink": ({"nothing to choose": ink_rule(train, train_labels)}, False),
        "holes_0_vs_8": ({f"threshold {t}": holes_rule(t, 0) for t in THRESHOLDS}, True),
        "holes_and_size_0_vs_8": ({f"threshold {t}, small hole {s}": holes_rule(t, s)
                                   for t in THRESHOLDS for s in SMALL_HOLES}, True),
        "template": ({d: template_rule(templates(train, train_labels), d) for d in DISTANCES}, False),
        "deskewed_template": ({f"{d}, blur {b}": template_rule(templates(blur(straight, b), train_labels), d,
                                                                lambda images, b=b: blur(deskew(images), b))
                               for d in DISTANCES for b in BLURS}, False),
    }
    rules = {}
    for name, (options, two_class) in candidates.items():
        images, labels = (val[val_08], val_labels[val_08]) if two_class else (val, val_labels)
        choice, scores = choose(options, images, labels)
        rules[name] = {"predict": options[choice], "two_class": two_class, "choice": choice, "val_candidates": scores,
                       "val_images": len(labels)}
        print(f"{name:22s} chose {choice:27s} validation {100 * scores[choice]:.2f}% (best of {len(scores)})")
    return rules


def train_mlp(data, seed: int, epochs: int, device):
    """03's network, trained as `python 03_train_mnist.py --seed SEED` trains it."""
    dl_utils.set_seed(seed)  # the same starting weights as 03's ...
    data.train_loader.generator.manual_seed(seed)  # ... and the same batches of 64, shuffled by the seed
    model = dl_utils.SimpleNN(hidden=128).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=dl_utils.fused_adam_works(device))
    dl_utils.fit(model, data.train_loader, data.val_loader, torch.nn.CrossEntropyLoss(), optimizer, epochs=epochs)
    ten, zero_eight = network_answers(model, data.val_loader)  # the last epoch's network: the one tested
    return seed, model, accuracy(*ten), accuracy(*zero_eight)


def network_answers(model, loader) -> tuple:
    """(predictions, labels) for all ten digits, and for the 0s and 8s alone: the larger of outputs 0 and 8."""
    with torch.inference_mode():
        logits, labels = model(loader.images).cpu(), loader.labels.cpu()  # (N, 10), (N,)
    is_08 = (labels == 0) | (labels == 8)
    return (logits.argmax(dim=1), labels), (torch.where(logits[is_08, 8] > logits[is_08, 0], 8, 0), labels[is_08])


def final_exam(rules: dict, mlps: list, data) -> dict:
    """The test split, read once: name -> (predictions, labels) for every rule and every network."""
    images, labels = pixels(data.test_loader, data), data.test_loader.labels.cpu()
    is_08 = (labels == 0) | (labels == 8)
    answers = {name: (rule["predict"](images[is_08]), labels[is_08]) if rule["two_class"]
               else (rule["predict"](images), labels) for name, rule in rules.items()}
    for seed, model, *_ in mlps:
        answers[f"mlp_seed_{seed}"], answers[f"mlp_0_vs_8_seed_{seed}"] = network_answers(model, data.test_loader)
    return answers


def spread(values: list) -> dict:
    std = statistics.stdev(values) if len(values) > 1 else 0.0  # n - 1: a sample of seeds
    return {"mean": statistics.mean(values), "std": std, "min": min(values), "max": max(values), "per_seed": values}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", metavar="DATA_DIR", help="holds MNIST/raw/ (None: $DL_DATA_DIR or data/)")
    parser.add_argument("--out-dir", type=Path, default=dl_utils.DEFAULT_OUT_DIR, help="where baseline_rules.json goes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one MLP per seed")
    parser.add_argument("--epochs", type=dl_utils.positive_int, default=10, help="the MLP's epochs (03's)")
    parser.add_argument("--device", default="auto", help="where the MLP trains (the rules run on the CPU)")
    args = parser.parse_args(argv)
    device, why = dl_utils.get_device(args.device)

    dl_utils.step("1. Data: the course's split, pixels back in [0, 1]")
    data = dl_utils.load_mnist_data(args.data_dir, device=device)
    train, train_labels = pixels(data.train_loader, data), data.train_loader.labels.cpu()
    val, val_labels = pixels(data.val_loader, data), data.val_loader.labels.cpu()
    print(f"{len(train_labels):,} training and {len(val_labels):,} validation images")

    dl_utils.step("2. The rules: built from the training images, every choice made on validation")
    rules = build_rules(train, train_labels, val, val_labels)

    dl_utils.step(f"3. 03's MLP, seeds {args.seeds} ({why})")
    mlps = [train_mlp(data, seed, args.epochs, device) for seed in args.seeds]  # (seed, model, val, val 0 vs 8)

    dl_utils.step("4. The final exam: the test split, read once")
    answers = final_exam(rules, mlps, data)
    test = {name: accuracy(*answer) for name, answer in answers.items()}
    confused = {name: (dl_utils.most_confused_pairs(dl_utils.confusion_matrix(*answer), k=1) or [None])[0]
                for name, answer in answers.items()}  # (true digit, what was said, how often)
    results = {"script": "baseline_rules", "device": dl_utils.device_name(device), **dl_utils.machine_info(),
               "split": {"train": len(train_labels), "validation": len(val_labels), "test": len(answers["ink"][1])},
               "choices": "by validation accuracy, the first candidate on a tie; the test split read once, at the end",
               "rules": {name: {"classes": "0 vs 8" if rule["two_class"] else "0-9", "choice": rule["choice"],
                                "val_images": rule["val_images"], "test_images": len(answers[name][1]),
                                "val_accuracy": rule["val_candidates"][rule["choice"]], "test_accuracy": test[name],
                                "most_confused_test": confused[name], "val_candidates": rule["val_candidates"]}
                         for name, rule in rules.items()},
               "mlp": {"seeds": args.seeds, "spec": f"03's SimpleNN(128), Adam 1e-3, batch 64, {args.epochs} epochs",
                       "val_accuracy": spread([mlp[2] for mlp in mlps]),
                       "val_accuracy_0_vs_8": spread([mlp[3] for mlp in mlps]),
                       "test_accuracy": spread([test[f"mlp_seed_{s}"] for s in args.seeds]),
                       "test_accuracy_0_vs_8": spread([test[f"mlp_0_vs_8_seed_{s}"] for s in args.seeds]),
                       "most_confused_test": {s: confused[f"mlp_seed_{s}"] for s in args.seeds}}}

    dl_utils.step("5. Results (accuracy in %; the MLP's: mean +- standard deviation over seeds)")
    rows = [(name, r["classes"], f"{100 * r['val_accuracy']:.2f}", f"{100 * r['test_accuracy']:.2f}",
             r["most_confused_test"]) for name, r in results["rules"].items()]
    mlp, pm = results["mlp"], lambda stats: f"{100 * stats['mean']:.2f} +- {100 * stats['std']:.2f}"
    rows += [("MLP (03)", "0-9", pm(mlp["val_accuracy"]), pm(mlp["test_accuracy"]),
              mlp["most_confused_test"][args.seeds[0]]),
             ("MLP (03) on 0 vs 8", "0 vs 8", pm(mlp["val_accuracy_0_vs_8"]), pm(mlp["test_accuracy_0_vs_8"]), "")]
    for row in [("", "digits", "validation", "test", "most confused on test (true, said, count)"), *rows]:
        print("{:22s} {:6s} {:>13s} {:>13s}  {}".format(*map(str, row)))
    dl_utils.save_results(args.out_dir, "baseline_rules", results)
    return results


if __name__ == "__main__":
    dl_utils.run(main)
