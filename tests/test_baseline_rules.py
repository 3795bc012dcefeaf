"""benchmarks/baseline_rules.py: hand-written rules against 03's MLP, on the tiny synthetic MNIST.

The hole counter is checked on shapes drawn here (a ring, an 8, a bar, an open C); the rules on the
synthetic digits of conftest.py; and the script's promise that every choice is made on validation: the
test split is guarded so that reading it before the final exam fails the run.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dl_utils  # noqa: E402


@pytest.fixture(scope="module")
def rules_module():
    spec = importlib.util.spec_from_file_location("test_baseline_rules_script", REPO / "benchmarks" / "baseline_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_splits(tiny_mnist):
    data = dl_utils.load_mnist_data(tiny_mnist)
    return {name: (torch.as_tensor((loader.images[:, 0] * data.std + data.mean).clamp(0, 1)), loader.labels)
            for name, loader in (("train", data.train_loader), ("val", data.val_loader), ("test", data.test_loader))}


def ring(image: torch.Tensor, cy: float, cx: float, outer: float, inner: float) -> torch.Tensor:
    """Draw a bright ring (ink between radius `inner` and `outer`) into a 28x28 image."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    distance = ((rows - cy) ** 2 + (cols - cx) ** 2).sqrt()
    image[(distance <= outer) & (distance >= inner)] = 1.0
    return image


def test_hole_counter_counts_the_holes_of_drawn_shapes(rules_module):
    zero = ring(torch.zeros(28, 28), 14, 14, 9, 6)
    eight = ring(ring(torch.zeros(28, 28), 8, 14, 6, 3), 19, 14, 7, 4)  # two loops, one on the other
    bar = torch.zeros(28, 28)
    bar[4:24, 12:16] = 1.0
    open_c = zero.clone()
    open_c[12:17, 19:] = 0.0  # a gap in the ring's right side: the water gets in, no hole left
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    diamond = ((rows - 14).abs() + (cols - 14).abs() == 8).float()  # 1 pixel thin: its ink touches only diagonally
    sizes = rules_module.hole_sizes(torch.stack([zero, eight, bar, open_c, diamond]), threshold=0.5)
    assert (sizes > 0).sum(dim=1).tolist() == [1, 2, 0, 0, 1]  # water never slips diagonally between ink
    inside = ring(torch.zeros(28, 28), 14, 14, 5.99, 0) > 0  # the ring's hole: the disc inside radius 6
    assert sizes[0].max().item() == inside.sum().item()


def test_holes_rule_says_0_for_one_big_hole_and_8_for_two_or_one_small(rules_module):
    zero = ring(torch.zeros(28, 28), 14, 14, 10, 6)
    eight = ring(ring(torch.zeros(28, 28), 8, 14, 6, 3), 19, 14, 7, 4)
    small_loop = ring(torch.zeros(28, 28), 20, 14, 5, 2)  # an 8 whose upper loop stayed open: one small hole
    images = torch.stack([zero, eight, small_loop])
    assert rules_module.holes_rule(0.5, 0)(images).tolist() == [0, 8, 0]
    assert rules_module.holes_rule(0.5, 40)(images).tolist() == [0, 8, 8]


def test_every_rule_gives_one_prediction_per_image(rules_module, tiny_splits):
    (train, train_labels), (val, val_labels), (test, _) = tiny_splits["train"], tiny_splits["val"], tiny_splits["test"]
    rules = rules_module.build_rules(train, train_labels, val, val_labels)
    assert set(rules) == {"most_common_digit", "ink", "holes_0_vs_8", "holes_and_size_0_vs_8", "template",
                          "deskewed_template"}
    for name, rule in rules.items():
        predictions = rule["predict"](test)
        assert predictions.shape == (len(test),), name
        allowed = {0, 8} if rule["two_class"] else set(range(10))
        assert set(predictions.tolist()) <= allowed, name
        assert rule["choice"] in rule["val_candidates"]
        assert rule["val_candidates"][rule["choice"]] == max(rule["val_candidates"].values()), name


def test_template_rule_beats_chance_and_the_most_common_digit_does_not(rules_module, tiny_splits):
    (train, train_labels), (test, test_labels) = tiny_splits["train"], tiny_splits["test"]
    floor = rules_module.accuracy(rules_module.most_common_digit(train_labels)(test), test_labels)
    assert floor < 0.2  # ten balanced classes: about 10%
    for distance in rules_module.DISTANCES:
        template = rules_module.template_rule(rules_module.templates(train, train_labels), distance)
        assert rules_module.accuracy(template(test), test_labels) > 0.8, distance


def test_choose_keeps_the_best_on_the_images_it_is_given(rules_module):
    labels = torch.tensor([0, 8, 8, 0])
    candidates = {"always 0": lambda images: torch.zeros(4, dtype=torch.long), "right": lambda images: labels,
                  "also right": lambda images: labels}
    choice, scores = rules_module.choose(candidates, torch.zeros(4, 28, 28), labels)
    assert (choice, scores["always 0"], scores["right"]) == ("right", 0.5, 1.0)  # the first on a tie


class GuardedLoader:
    """Stands for the test loader: any use before the final exam opens it fails the run."""

    def __init__(self, loader, state):
        self._loader, self._state = loader, state

    def _check(self, what):
        if not self._state["open"]:
            raise AssertionError(f"the test split was read ({what}) before the final exam")

    def __getattr__(self, name):
        self._check(name)
        return getattr(self._loader, name)

    def __iter__(self):
        self._check("iteration")
        return iter(self._loader)

    def __len__(self):
        self._check("len")
        return len(self._loader)


def run_guarded(module, monkeypatch, tiny_mnist, out_dir, *, open_at_final_exam=True):
    state, real_load, real_exam = {"open": False, "exams": 0}, dl_utils.load_mnist_data, module.final_exam

    def load(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.test_loader = GuardedLoader(data.test_loader, state)
        return data

    def final_exam(*args, **kwargs):
        state["open"], state["exams"] = open_at_final_exam, state["exams"] + 1
        return real_exam(*args, **kwargs)

    monkeypatch.setattr(dl_utils, "load_mnist_data", load)
    monkeypatch.setattr(module, "final_exam", final_exam)
    results = module.main(["--data-dir", str(tiny_mnist), "--out-dir", str(out_dir), "--seeds", "0", "1",
                           "--epochs", "1", "--device", "cpu"])
    return results, state


def test_choices_use_validation_only_and_the_test_is_read_once_at_the_end(rules_module, tiny_mnist, tmp_path,
                                                                           monkeypatch):
    results, state = run_guarded(rules_module, monkeypatch, tiny_mnist, tmp_path)
    assert state["exams"] == 1
    saved = json.loads((tmp_path / "baseline_rules.json").read_text())
    assert saved["split"] == {"train": 550, "validation": 50, "test": 200}
    for name, rule in saved["rules"].items():
        assert 0 <= rule["val_accuracy"] <= 1 and 0 <= rule["test_accuracy"] <= 1, name
        assert rule["val_accuracy"] == max(rule["val_candidates"].values()), name
    assert saved["rules"]["template"]["test_accuracy"] > 0.5
    _, test_labels = dl_utils.read_mnist(tiny_mnist, train=False)
    zeros_and_eights = int(((test_labels == 0) | (test_labels == 8)).sum())
    assert [saved["rules"][name]["test_images"] for name in ("ink", "holes_0_vs_8")] == [200, zeros_and_eights]
    mlp = saved["mlp"]
    assert mlp["seeds"] == [0, 1] and len(mlp["test_accuracy"]["per_seed"]) == 2
    assert mlp["test_accuracy"]["min"] <= mlp["test_accuracy"]["mean"] <= mlp["test_accuracy"]["max"]
    assert mlp["test_accuracy"]["std"] >= 0 and "cpu" in saved and "torch_version" in saved and "device" in saved


def test_the_guard_catches_a_test_read_outside_the_final_exam(rules_module, tiny_mnist, tmp_path, monkeypatch):
    """Keep the guard shut during the final exam too: the run must fail, so the test above can."""
    with pytest.raises(AssertionError, match="before the final exam"):
        run_guarded(rules_module, monkeypatch, tiny_mnist, tmp_path, open_at_final_exam=False)
