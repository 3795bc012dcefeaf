"""What 04_load_model.py --draw reads, stroke by stroke, replayed without a screen.

LEARNING_GUIDE.md (04, "Draw your own digit, live") shows the --draw window
after a 1 and then a bar on top of it, and says what the network read after
each stroke. This script makes that picture and those answers. It runs 04's
own --draw (04's main: the checkpoint, the rebuilt network, then the drawing
pad of extras/draw.py) with matplotlib's Agg backend in place of a window,
sends the pad the mouse events of each stroke as a mouse would
(benchmarks/digit_strokes.py), and saves the pad as it looks after the last
stroke.

Run it (from the repository root; a few seconds, no MNIST needed)
    python 06_cnn_mnist.py --data-dir DATA_DIR                 # makes outputs/cnn_model.pth
    python benchmarks/draw_replay.py --model outputs/cnn_model.pth

Writes (in --out-dir, default outputs/)
    screenshot.png        the pad after the last stroke: the drawing, what the network saw, its answer
    draw_replay.json      the answer and its confidence after each stroke, and the checkpoint used
"""

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"  # no window: the figure is drawn into memory and saved
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import dl_utils from the repository root
import dl_utils  # noqa: E402
from benchmarks.digit_strokes import STROKES, draw_on_pad  # noqa: E402
from extras import draw  # noqa: E402  (the pad 04 --draw opens)

# The guide's example: a 1, then a bar on top of it (unit box, x right, y down), one stroke each.
STEPS = [("a 1", STROKES[1]), ("a bar on top", [[(0.2, 0.07), (0.6, 0.05)]])]
FIGURE = "screenshot.png"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Replay the guide's --draw example (a 1, then a bar on top).")
    parser.add_argument("--model", type=Path, required=True, help="the checkpoint to draw for, e.g. outputs/cnn_model.pth")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs"), help="where to write (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="ignored: the pad needs no MNIST (accepted for run_all.py)")
    args = parser.parse_args(argv)

    # A benchmark may load a lesson (the course never does): a file named 04_... cannot be `import`ed.
    lesson = Path(__file__).resolve().parents[1] / "04_load_model.py"
    spec = importlib.util.spec_from_file_location("load_model", lesson)
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    answers = {}

    def replay(pad):  # stands in for DrawingPad.show, which would open the window
        for name, strokes in STEPS:
            draw_on_pad(pad, strokes, draw.PAD_PIXELS)
            answers[name] = pad.predictions[-1]
        pad.fig.canvas.draw()
        pad.fig.savefig(args.out_dir / FIGURE, dpi=100)
        pad.quit()

    original = draw.interactive_backend, draw.DrawingPad.show
    draw.interactive_backend, draw.DrawingPad.show = (lambda: True), replay
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = load.main(["--draw", "--model", str(args.model), "--out-dir", str(args.out_dir), "--device", "cpu"])
    finally:  # the pad as it was, for whoever imported it too (the tests)
        draw.interactive_backend, draw.DrawingPad.show = original
    summary = {"model": str(args.model), "arch": results["checkpoint_arch"],
               "strokes": [{"after": name, "digit": digit, "confidence": confidence}
                           for name, (digit, confidence) in answers.items()]}
    (args.out_dir / "draw_replay.json").write_text(json.dumps(summary, indent=2) + "\n")
    for step in summary["strokes"]:
        print(f"after {step['after']}: {step['digit']} ({100 * step['confidence']:.1f}%)")
    print(f"Saved {args.out_dir / FIGURE} and {args.out_dir / 'draw_replay.json'}")
    return summary


if __name__ == "__main__":
    dl_utils.run(main)
