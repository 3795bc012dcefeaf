"""Draw a digit with the mouse and watch the network read it, stroke by stroke.

04_load_model.py points here: `python 04_load_model.py --draw` reads the
checkpoint, rebuilds the network (04's sections 1 to 3), then calls `draw`
below instead of going on with the test set. It needs no MNIST, only a screen.

Run it
    python 04_load_model.py --draw                                  # 03's MLP
    python 04_load_model.py --model outputs/cnn_model.pth --draw    # 06's CNN, no retraining

Why a file of its own: the pad is a small matplotlib application (mouse,
keys, buttons, a live bar chart), about 150 lines that teach matplotlib, not
loading a model. In 04 it sat between the lesson and its main(); here it
waits for whoever wants it. It uses dl_utils and libraries, never a lesson.
"""

import tempfile
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends import BackendFilter, backend_registry
from matplotlib.widgets import Button
from PIL import Image

import dl_utils

PAD_PIXELS = 280  # the drawing pad is 280 x 280, 10x MNIST's 28, so a mouse stroke stays smooth
BRUSH = 12  # brush radius in pad pixels; the preparation brings any stroke to MNIST's width anyway
DRAWING_FILE = "drawn_digit.png"  # where the s key saves your drawing (then try it with --image)


# After every stroke the drawing goes through exactly what --image does (it
# is saved as a PNG and read back by dl_utils.prepare_digit_image: inverted,
# cropped, scaled to 20 pixels, centred by its centre of mass), and the
# window shows the 28x28 the network sees and its ten probabilities. Watch
# them change as you add a stroke: a "1" becomes a "7" with one bar on top.
class DrawingPad:
    """The --draw window: a pad on the left, what the network sees in the middle, its answer on the right.

    Left mouse button draws; keys c (clear), s (save as drawn_digit.png), q
    (quit), or the buttons below the pad. Tests send the figure synthetic
    mouse events, which arrive here exactly as a real mouse's do.
    """

    def __init__(self, model, *, normalization: dict, out_dir: Path, model_name: str, device="cpu"):
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
        plt.close(self.fig)

    def show(self):
        """Open the window; returns when it is closed."""
        plt.show()


def interactive_backend() -> bool:
    """Can matplotlib open a window here? Agg (no screen: a server, SSH, CI) only draws into files."""
    return matplotlib.get_backend().lower() in backend_registry.list_builtin(BackendFilter.INTERACTIVE)


def draw(model, checkpoint: dict, *, out_dir: Path, device) -> dict:
    """04 --draw: open the pad for `model` (rebuilt from `checkpoint`); returns the answer after each stroke."""
    no_window = ("python 04_load_model.py --draw needs a window, and matplotlib cannot open one here ({why}). "
                 "That happens on a server, over SSH without X forwarding, or with MPLBACKEND=Agg. Run it on a "
                 "computer with a screen, or draw your digit in any paint program, save it as a PNG and run "
                 "python 04_load_model.py --image my_digit.png: the same preparation, the same network.")
    if not interactive_backend():
        raise dl_utils.CourseError(no_window.format(why=f"its backend is {matplotlib.get_backend()}, "
                                                        "which only writes files"))
    try:
        pad = DrawingPad(model, normalization=checkpoint["normalization"], out_dir=out_dir,
                         model_name=checkpoint["arch"], device=device)
    except Exception as error:  # e.g. Tk's "no display name and no $DISPLAY environment variable"
        raise dl_utils.CourseError(no_window.format(why=f"{type(error).__name__}: {error}")) from None
    print("Draw a digit in the window (left mouse button). After each stroke you see what the network sees "
          "and its answer. Keys: c clear, s save, q quit.")
    pad.show()
    return {"checkpoint_arch": checkpoint["arch"], "drawn_predictions": pad.predictions}
