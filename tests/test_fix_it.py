"""The debugging exercises and the two checklist exercises of exercises/ex08_fix_it.py.

  * each untouched fix_* function fails with its SYMPTOM in plain words (a Fail,
    which the checker prints without a traceback) and never names its bug
  * each reference fix passes, and so do other correct fixes
  * a fix that only hides the symptom (a smaller learning rate, clipped values, a
    rescaled output, dropout switched off by hand, a conversion at the very end)
    fails: the checks compare behaviour exactly with the course's code
  * diagnose is checked on real histories from docs/results, none of them shown
    in its docstring; saturation against autograd, with the usual slips named
  * the checker, run as a learner runs it on the untouched file, shows the first
    symptom and no traceback
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
EXERCISES = REPO / "exercises"
sys.path.insert(0, str(EXERCISES))

import checks  # noqa: E402


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STUB = load(EXERCISES / "ex08_fix_it.py", "ex08_stub")
SOLUTION = load(EXERCISES / "solutions" / "ex08_fix_it.py", "ex08_solution")
BY_NAME = {e.name: e for e in checks.EXERCISES if e.lesson == "08"}


def fails(name: str, fn, *fragments: str) -> str:
    with pytest.raises(checks.Fail) as failure:
        BY_NAME[name].check(fn)
    message = str(failure.value)
    for fragment in fragments:
        assert fragment in message, f"{name}: {fragment!r} not in {message!r}"
    return message


# The untouched stub's message: the symptom it must describe, and words that would give the bug away.
SYMPTOMS = {
    "fix_train_epoch": (["your loss per epoch is", "the course's loop"], ["zero_grad", "accumulat", "add up"]),
    "fix_evaluate": (["Two evaluations of the same model", "different accuracies"], ["eval()", "ropout", "training mode"]),
    "fix_train_step": (["40 steps on an easy problem", "your loss went"], ["softmax", "probabilit", "logit"]),
    "fix_normalize": (["came out as different numbers when only the test images changed"], ["statistic", "mean"]),
    "fix_shuffle": (["the labels are wrong", "near 10% (chance)"], ["randperm", "order", "permutation"]),
    "fix_prepare_digit": (["reads your prepared 1 as a 0 and your prepared 0 as a 1", "background is -0.42"],
                          ["invert", "1 -", "255 -"]),
    "fix_channels_first": (["the picture is not", "should read [1, 1, 1, 0, 0, 0]", "reads [1, 0, 0, 1, 0, 0]"],
                           ["view", "permute", "axis", "axes"]),
    "fix_fit": (["memory in use grows with every batch"], [".item()", "detach", "grad_fn", "tensor"]),
    "fix_prepare_batch": (["the loss goes [144.5", "Your pixels run from -0.4242 to 827.2"], ["255", "divide"]),
}


def test_eleven_exercises_in_lesson_08():
    assert list(BY_NAME) == [*SYMPTOMS, "diagnose", "saturation"]
    assert all(len(e.hints) >= 2 for e in BY_NAME.values())


@pytest.mark.parametrize("name", list(SYMPTOMS))
def test_untouched_stub_runs_and_fails_with_its_symptom(name):
    shown, hidden = SYMPTOMS[name]
    message = fails(name, getattr(STUB, name), *shown)
    assert "Traceback" not in message
    for word in hidden:
        assert word not in message, f"{name}'s message names the bug ({word!r}): {message}"
    fixed = [line.split("# FIXED")[0].strip() for line in (EXERCISES / "solutions" / "ex08_fix_it.py").read_text()
             .splitlines() if "# FIXED" in line]
    assert len(fixed) == len(SYMPTOMS)
    for hint in BY_NAME[name].hints:  # the hints narrow it down, but never write the fixed line
        assert not any(line in hint for line in fixed), hint


@pytest.mark.parametrize("name", ["diagnose", "saturation"])
def test_untouched_stub_is_still_to_do(name):
    with pytest.raises(NotImplementedError):
        BY_NAME[name].check(getattr(STUB, name))


@pytest.mark.parametrize("name", list(BY_NAME))
def test_reference_passes(name):
    BY_NAME[name].check(getattr(SOLUTION, name))


def test_stub_and_solution_differ_only_in_bodies():
    def docs(module):
        return {name: getattr(module, name).__doc__ for name in BY_NAME}
    assert docs(STUB) == docs(SOLUTION)
    assert "FIXED" not in (EXERCISES / "ex08_fix_it.py").read_text()


# ---------------------------------------------------------------------------
# Fixes that hide the symptom fail; other correct fixes pass
# ---------------------------------------------------------------------------
def test_train_epoch_hiding_fixes_fail():
    def smaller_lr(model, loader, loss_fn, optimizer):  # no zero_grad, a tenth of the step instead
        for group in optimizer.param_groups:
            group["lr"] = 0.05
        return STUB.fix_train_epoch(model, loader, loss_fn, optimizer)

    def clipped(model, loader, loss_fn, optimizer):  # no zero_grad, the exploding sum clipped
        model.train()
        total, seen = 0.0, 0
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total, seen = total + loss.item() * len(labels), seen + len(labels)
        return total / seen

    def zeroed_too_late(model, loader, loss_fn, optimizer):  # zero_grad between backward and step
        model.train()
        total, seen = 0.0, 0
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.zero_grad()
            optimizer.step()
            total, seen = total + loss.item() * len(labels), seen + len(labels)
        return total / seen

    for wrong in (smaller_lr, clipped, zeroed_too_late):
        fails("fix_train_epoch", wrong, "your loss per epoch is")


def test_train_epoch_other_correct_fix_passes():
    def model_zero_grad(model, loader, loss_fn, optimizer):
        model.train()
        total, seen = 0.0, 0
        for images, labels in loader:
            model.zero_grad(set_to_none=False)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.detach() * len(labels), seen + len(labels)
        return float(total) / seen
    BY_NAME["fix_train_epoch"].check(model_zero_grad)


def test_evaluate_hiding_fixes_fail():
    def seeded(model, loader):  # the same random dropout every time: repeatable, still wrong
        torch.manual_seed(0)
        return STUB.fix_evaluate(model, loader)

    def dropout_zeroed(model, loader):  # dropout's effect removed by hand, in training mode
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        return STUB.fix_evaluate(model, loader)

    def averaged(model, loader):  # many random passes averaged, with a fixed seed
        torch.manual_seed(0)
        correct, seen = 0, 0
        with torch.no_grad():
            for images, labels in loader:
                probabilities = sum(torch.softmax(model(images), dim=1) for _ in range(50))
                correct += (probabilities.argmax(dim=1) == labels).sum().item()
                seen += len(labels)
        return correct / seen

    fails("fix_evaluate", seeded, "this model answers 160 of these 200 images right")
    fails("fix_evaluate", dropout_zeroed, "changed the model")
    message = fails("fix_evaluate", averaged)
    assert "times for 4 batches" in message or "160 of these 200" in message


def test_evaluate_fix_that_restores_training_mode_passes():
    def restoring(model, loader):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                correct = sum((model(x).argmax(dim=1) == y).sum().item() for x, y in loader)
            return correct / len(loader.labels)
        finally:
            model.train(was_training)
    BY_NAME["fix_evaluate"].check(restoring)


def test_train_step_hiding_fixes_fail():
    def sharpened(model, images, labels, optimizer):  # probabilities scaled up so the loss can go lower
        optimizer.zero_grad()
        loss = F.cross_entropy(torch.softmax(model(images), dim=1) * 10, labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    def bigger_steps(model, images, labels, optimizer):  # the stalled loss pushed harder
        for group in optimizer.param_groups:
            group["lr"] = 5.0
        return STUB.fix_train_step(model, images, labels, optimizer)

    for wrong in (sharpened, bigger_steps):
        fails("fix_train_step", wrong, "your loss went")


def test_train_step_log_softmax_and_nll_passes():
    def log_softmax(model, images, labels, optimizer):
        optimizer.zero_grad()
        loss = F.nll_loss(torch.log_softmax(model(images), dim=1), labels)
        loss.backward()
        optimizer.step()
        return loss.item()
    BY_NAME["fix_train_step"].check(log_softmax)


def test_normalize_hiding_fixes_fail():
    def tutorial_constants(train_images, test_images):  # MNIST's famous numbers, not these images'
        return [((x.float() / 255 - 0.1307) / 0.3081).unsqueeze(1) for x in (train_images, test_images)]

    def each_its_own(train_images, test_images):  # every split normalised with its own statistics
        return [((x.float() / 255 - (x.float() / 255).mean()) / (x.float() / 255).std()).unsqueeze(1)
                for x in (train_images, test_images)]

    def test_only(train_images, test_images):
        pixels = test_images.float() / 255
        return [((x.float() / 255 - pixels.mean()) / pixels.std()).unsqueeze(1) for x in (train_images, test_images)]

    fails("fix_normalize", tutorial_constants, "mean 0 and std 1")
    fails("fix_normalize", each_its_own, "depending on which other test images")
    fails("fix_normalize", test_only, "when only the test images changed")


def test_normalize_population_std_passes():
    def population(train_images, test_images):
        pixels = train_images.double() / 255
        mean, std = pixels.mean(), pixels.std(correction=0)
        return [((x.float() / 255 - mean) / std).float().unsqueeze(1) for x in (train_images, test_images)]
    BY_NAME["fix_normalize"].check(population)


def test_shuffle_hiding_fixes_fail():
    def not_shuffled(images, labels, generator):  # the labels fit again... because nothing moves
        return images, labels

    def unseeded(images, labels, generator):  # one order, but not the generator's
        order = torch.randperm(len(labels))
        return images[order], labels[order]

    def sorted_labels(images, labels, generator):  # shuffled images, labels sorted "to match"
        images = images[torch.randperm(len(labels), generator=generator)]
        return images, labels.sort().values

    fails("fix_shuffle", not_shuffled, "nothing was shuffled")
    fails("fix_shuffle", unseeded, "does not follow the generator")
    fails("fix_shuffle", sorted_labels, "the labels are wrong")


def test_shuffle_argsort_passes():
    def argsort(images, labels, generator):
        order = torch.rand(len(labels), generator=generator).argsort()
        return images[order], labels[order]
    BY_NAME["fix_shuffle"].check(argsort)


def test_prepare_digit_hiding_fixes_fail():
    def negated(photo, mean, std):  # flips the sign, not the picture: the paper becomes -2.57, not -0.42
        return -((photo.float() / 255 - mean) / std).reshape(1, 1, 28, 28)

    def own_statistics(photo, mean, std):  # inverted, but normalised with the photo's own mean and std
        pixels = 1 - photo.float() / 255
        return ((pixels - pixels.mean()) / pixels.std()).reshape(1, 1, 28, 28)

    fails("fix_prepare_digit", negated, "background is -0.42")
    fails("fix_prepare_digit", own_statistics, "A model that tells MNIST's 1s from its 0s")


def test_prepare_digit_inverted_in_0_255_passes():
    BY_NAME["fix_prepare_digit"].check(
        lambda photo, mean, std: (((255 - photo).float() / 255 - mean) / std)[None, None])


def test_channels_first_hiding_fixes_fail():
    fails("fix_channels_first", lambda photos: (photos.float() / 255).reshape(
        len(photos), 3, *photos.shape[1:3]), "the picture is not")
    fails("fix_channels_first", lambda photos: (photos.float() / 255).transpose(1, 3), "should have shape (2, 3, 4, 6)")


def test_channels_first_movedim_passes():
    BY_NAME["fix_channels_first"].check(lambda photos: photos.movedim(-1, 1).contiguous().float() / 255)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_fit_hiding_fixes_fail():
    def converted_at_the_end(model, loader, loss_fn, optimizer, epochs):  # floats in the history, graph kept
        return [float(value) for value in STUB.fix_fit(model, loader, loss_fn, optimizer, epochs)]

    def detached_per_epoch(model, loader, loss_fn, optimizer, epochs):
        history = []
        for _ in range(epochs):
            total, seen = 0.0, 0
            for images, labels in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(images), labels)
                loss.backward()
                optimizer.step()
                total, seen = total + loss * len(labels), seen + len(labels)
            history.append((total / seen).detach().item())
        return history

    def own_loss(model, loader, loss_fn, optimizer, epochs):  # dodging the loss_fn it was given
        return STUB.fix_fit(model, loader, nn.CrossEntropyLoss(), optimizer, epochs)

    fails("fix_fit", converted_at_the_end, "memory in use grows with every batch")
    fails("fix_fit", detached_per_epoch, "memory in use grows with every batch")
    fails("fix_fit", own_loss, "with the loss_fn it is given")


def test_fit_detach_like_03_passes():
    def like_03(model, loader, loss_fn, optimizer, epochs):
        history = []
        for _ in range(epochs):
            model.train()
            total, seen = 0.0, 0
            for images, labels in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(images), labels)
                loss.backward()
                optimizer.step()
                total, seen = total + loss.detach() * len(labels), seen + len(labels)
            history.append(float(total) / seen)
        return history
    BY_NAME["fix_fit"].check(like_03)


def test_prepare_batch_hiding_fixes_fail():
    def clamped(images, mean, std):  # the huge values cut off at MNIST's brightest pixel
        return ((images.float() - mean) / std).clamp(max=(1 - mean) / std).unsqueeze(1)

    def own_statistics(images, mean, std):  # standardised with the batch's own numbers
        pixels = images.float()
        return ((pixels - pixels.mean()) / pixels.std()).unsqueeze(1)

    for wrong in (clamped, own_statistics):
        fails("fix_prepare_batch", wrong, "Trained with plain SGD (lr 0.05) on a batch prepared by your function")


# ---------------------------------------------------------------------------
# diagnose: real histories; saturation: autograd
# ---------------------------------------------------------------------------
def test_diagnose_reads_real_runs_not_its_docstring():
    docstring = SOLUTION.diagnose.__doc__
    for run in checks._CURVES:
        history = json.loads((REPO / "docs" / "results" / f"{run}.json").read_text())["history"]
        assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(history)
        assert str(history["train_loss"][:2])[1:-1] not in docstring
    assert "checker uses real runs from docs/results" in docstring
    assert set(checks._CURVES.values()) == {"good fit", "overfitting", "underfitting", "lr too high"}


def test_diagnose_other_reasonable_thresholds_pass():
    def stricter(history):
        train_loss, val_loss = history["train_loss"], history["val_loss"]
        if any(math.isnan(x) or math.isinf(x) for x in train_loss) or train_loss[-1] > 1.1 * min(train_loss) + 0.02:
            return "lr too high"
        if history["train_accuracy"][-1] < 0.8:
            return "underfitting"
        if val_loss[-1] > 1.15 * min(val_loss) or history["train_accuracy"][-1] - history["val_accuracy"][-1] > 0.04:
            return "overfitting"
        return "good fit"
    BY_NAME["diagnose"].check(stricter)


def test_diagnose_wrong_readings_fail():
    def no_nan_test(history):  # min() and > cannot see a nan
        if history["train_loss"][-1] > min(history["train_loss"]) + 0.05:
            return "lr too high"
        return SOLUTION.diagnose({**history, "train_loss": [0.5, 0.4]})

    def underfitting_first(history):
        if history["train_accuracy"][-1] < 0.9:
            return "underfitting"
        return SOLUTION.diagnose(history)

    def gap_only(history):  # overfitting read from the accuracy gap alone: misses a rising validation loss
        if SOLUTION.diagnose(history) != "overfitting":
            return SOLUTION.diagnose(history)
        return "overfitting" if history["train_accuracy"][-1] - history["val_accuracy"][-1] > 0.05 else "good fit"

    fails("diagnose", no_nan_test, "a run whose loss became nan", "should be 'lr too high'")
    fails("diagnose", underfitting_first, "03_lr_too_high.json", "yours returned str 'underfitting'")
    fails("diagnose", gap_only, "03_train_mnist.json", "should be 'overfitting'")
    fails("diagnose", lambda history: "good fit", "should be")


def test_saturation_slips_are_named():
    def outputs(activation, depth, inputs):
        result = []
        for x in inputs:
            y = torch.tensor(float(x))
            for _ in range(depth):
                y = activation(y)
            result.append(y.item())
        return result

    def first_slope_to_the_depth(activation, depth, inputs):
        return [SOLUTION.saturation(activation, 1, [x])[0] ** depth for x in inputs]

    def tanh_formula(activation, depth, inputs):  # the derivative of tanh, whatever the activation
        result = []
        for x in inputs:
            slope, y = 1.0, float(x)
            for _ in range(depth):
                slope, y = slope * (1 - math.tanh(y) ** 2), math.tanh(y)
            result.append(slope)
        return result

    fails("saturation", outputs, "Those are the outputs y")
    fails("saturation", first_slope_to_the_depth, "to the power depth")
    fails("saturation", tanh_formula, "saturation(torch.relu, 4", "relu's slope is exactly 1")


def test_saturation_float32_and_tensor_answers_pass():
    def float32(activation, depth, inputs):
        x = torch.tensor([float(v) for v in inputs], requires_grad=True)
        y = x
        for _ in range(depth):
            y = activation(y)
        y.sum().backward()
        return x.grad  # a tensor of slopes, each input's own (the sum's terms do not interact)
    BY_NAME["saturation"].check(float32)


def test_saturation_reference_shows_the_effect():
    tanh = SOLUTION.saturation(torch.tanh, 4, [0.5, 2.0, 8.0])
    relu = SOLUTION.saturation(torch.relu, 4, [0.5, 2.0, 8.0])
    assert tanh[0] > tanh[1] > tanh[2] and tanh[2] < 1e-6 and relu == [1.0, 1.0, 1.0]
    assert SOLUTION.saturation(torch.tanh, 4, [1.0])[0] < SOLUTION.saturation(torch.tanh, 1, [1.0])[0]


# ---------------------------------------------------------------------------
# As the learner runs it
# ---------------------------------------------------------------------------
def test_checker_on_the_untouched_file_shows_the_first_symptom_without_traceback(tmp_path):
    shutil.copy(EXERCISES / "ex08_fix_it.py", tmp_path / "ex08_fix_it.py")
    run = subprocess.run([sys.executable, str(EXERCISES / "check.py"), "08", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Traceback" not in output
    assert "your loss per epoch is" in re.sub(r"\s+", " ", output)  # the first exercise's symptom
    assert (tmp_path / "ex08_fix_it.py").read_text() == (EXERCISES / "ex08_fix_it.py").read_text()
