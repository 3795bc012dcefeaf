"""04_load_model.py --draw: the drawing pad of extras/draw.py, driven by synthetic mouse and key events
(no screen needed).

The pad's figure is drawn with Agg here; matplotlib delivers the events
below to the pad's handlers exactly as it delivers a real mouse's.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.backend_bases import KeyEvent

import dl_utils
from conftest import REPO, load_script
from extras import draw

sys.path.insert(0, str(REPO / "benchmarks"))
import digit_strokes  # noqa: E402
from digit_strokes import STROKES  # noqa: E402

load = load_script("04_load_model")
RAW = {"mean": 0.0, "std": 1.0}  # the template model below compares raw pixels


def to_pad(point, pad=draw.PAD_PIXELS):
    return digit_strokes.to_pad(point, pad)


def draw_strokes(pad, strokes):
    digit_strokes.draw_on_pad(pad, strokes, draw.PAD_PIXELS)


def press_key(pad, key):
    pad.fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", pad.fig.canvas, key))


@pytest.fixture(scope="module")
def template_model(tmp_path_factory):
    """A model that reads digits by template matching: its weights are the ten stroke-table digits,
    drawn with Pillow (not with the pad) and prepared like --image. It reads a drawing as the digit
    whose template it overlaps most (cosine similarity), so it recognises the pad's drawings only if
    the pad draws what the mouse did and prepares it as --image does."""
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("templates")
    rows = []
    for digit in range(10):
        picture = Image.new("L", (draw.PAD_PIXELS, draw.PAD_PIXELS), 255)
        ink = ImageDraw.Draw(picture)
        for stroke in STROKES[digit]:
            ink.line([to_pad(p) for p in stroke], fill=0, width=2 * draw.BRUSH, joint="curve")
        picture.save(folder / f"{digit}.png")
        _, digit28, _ = dl_utils.prepare_digit_image(folder / f"{digit}.png", **RAW)
        rows.append(torch.from_numpy(digit28).float().flatten())
    weights = torch.stack(rows)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(20 * weights / weights.norm(dim=1, keepdim=True))  # x20: confident softmax
    return model.eval()


def test_the_pad_reads_each_drawn_digit(template_model, tmp_path):
    pad = draw.DrawingPad(template_model, normalization=RAW, out_dir=tmp_path, model_name="templates")
    read = []
    for digit in range(10):
        draw_strokes(pad, STROKES[digit])
        read.append(pad.predictions[-1][0])
        assert pad.ax_bars.get_title().startswith(f"prediction: {read[-1]}")
        press_key(pad, "c")
        assert pad.ink.sum() == 0 and pad.ax_bars.get_title() == "draw a digit"
    assert read == list(range(10))
    # one answer per stroke: the 4 and the 8 have two strokes each
    assert len(pad.predictions) == sum(len(STROKES[d]) for d in range(10))
    pad.quit()


def test_a_saved_drawing_reads_the_same_with_image(template_model, tmp_path):
    """s saves the drawing; --image's code (classify_own_digit) then gives the pad's answer, to the digit."""
    pad = draw.DrawingPad(template_model, normalization=RAW, out_dir=tmp_path, model_name="templates")
    draw_strokes(pad, STROKES[7])
    press_key(pad, "s")
    saved = tmp_path / draw.DRAWING_FILE
    assert saved.is_file()
    again = dl_utils.classify_own_digit(template_model, saved, normalization=RAW, out_path=tmp_path / "own.png",
                                        model_name="templates")
    assert (again["image_prediction"], again["image_confidence"]) == pytest.approx(pad.predictions[-1])
    assert again["image_prediction"] == 7
    pad.quit()


def test_draw_from_the_command_line(monkeypatch, tmp_path):
    """main(["--draw"]) opens the pad with the checkpoint's model; here the 'window' draws a 1 and closes."""
    model = load.SimpleNN(hidden=16)  # 04's own copy of 03's class; the checkpoint's model_config says hidden 16
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=model, arch="SimpleNN",
                             model_config={"hidden": 16, "dropout": 0.0, "batch_norm": False}, hyperparameters={},
                             metrics={"test_accuracy": 0.1}, normalization={"mean": 0.13, "std": 0.31})
    monkeypatch.setattr(draw, "interactive_backend", lambda: True)
    monkeypatch.setattr(draw.DrawingPad, "show", lambda pad: draw_strokes(pad, STROKES[1]))
    results = load.main(["--draw", "--out-dir", str(tmp_path), "--device", "cpu"])
    assert len(results["drawn_predictions"]) == 1
    _, _, tensor = dl_utils.prepare_digit_image(_drawing_of(STROKES[1], tmp_path), mean=0.13, std=0.31)
    assert results["drawn_predictions"][0][0] == int(dl_utils.predict_digit(model.eval(), tensor).argmax())
    assert not (tmp_path / "04_load_model.json").exists()  # --draw does not overwrite the lesson's results


def _drawing_of(strokes, folder):
    """The same strokes drawn on a fresh pad and saved: what the command-line pad saw."""
    pad = draw.DrawingPad(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),
                          normalization=RAW, out_dir=folder / "again", model_name="x")
    draw_strokes(pad, strokes)
    pad.save()
    pad.quit()
    return folder / "again" / draw.DRAWING_FILE


def test_draw_without_a_screen_says_so(tmp_path):
    """Headless: one paragraph pointing to --image, exit status 1, no traceback."""
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=load.SimpleNN(), arch="SimpleNN",
                             model_config={"hidden": 128}, hyperparameters={}, metrics={},
                             normalization={"mean": 0.13, "std": 0.31})
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DL_DATA_DIR")}
    env.update(MPLBACKEND="Agg", PYTHONPATH="")
    done = subprocess.run([sys.executable, str(REPO / "04_load_model.py"), "--draw", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs a window" in done.stderr and "--image" in done.stderr and "agg" in done.stderr.lower()


def test_draw_replay_records_an_answer_per_stroke_and_the_picture(tmp_path):
    """benchmarks/draw_replay.py (the guide's screenshot): 04's --draw, two strokes, one answer each."""
    import json

    import draw_replay

    model = load.SimpleNN()
    dl_utils.save_checkpoint(tmp_path / "mnist_model.pth", model=model, arch="SimpleNN",
                             model_config={"hidden": 128, "dropout": 0.0, "batch_norm": False}, hyperparameters={},
                             metrics={"test_accuracy": 0.1}, normalization={"mean": 0.13, "std": 0.31})
    summary = draw_replay.main(["--model", str(tmp_path / "mnist_model.pth"), "--out-dir", str(tmp_path)])
    assert [step["after"] for step in summary["strokes"]] == [name for name, _ in draw_replay.STEPS]
    assert json.loads((tmp_path / "draw_replay.json").read_text()) == summary
    # the first answer is what the network says about a 1 drawn alone, prepared as --image does
    _, _, tensor = dl_utils.prepare_digit_image(_drawing_of(STROKES[1], tmp_path), mean=0.13, std=0.31)
    assert summary["strokes"][0]["digit"] == int(dl_utils.predict_digit(model.eval(), tensor).argmax())
    assert (tmp_path / draw_replay.FIGURE).stat().st_size > 10_000
    # the pad is left as it was: its own show() and backend check, not the replay's stand-ins
    assert (draw.DrawingPad.show.__name__, draw.interactive_backend.__name__) == ("show", "interactive_backend")
