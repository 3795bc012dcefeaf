"""Digits drawn from a few pen strokes: the "own handwriting" pictures of the
tests (tests/test_own_digit.py) and of the real-MNIST check
(benchmarks/own_digits.py) are both drawn from this one table."""

import math

import numpy as np


def _arc(cx, cy, rx, ry, start, end, steps=40):
    """Points on an ellipse; angles in degrees, clockwise on screen (y points down)."""
    return [(cx + rx * math.cos(math.radians(t)), cy + ry * math.sin(math.radians(t)))
            for t in np.linspace(start, end, steps)]


# Each digit: strokes in a unit box (x right, y down), each a list of points.
STROKES = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, 0, 360)],
    1: [[(0.58, 0.05), (0.45, 0.95)]],
    2: [_arc(0.5, 0.3, 0.27, 0.25, 190, 385) + [(0.2, 0.95), (0.82, 0.95)]],
    3: [_arc(0.48, 0.27, 0.25, 0.22, 200, 450) + _arc(0.48, 0.72, 0.28, 0.23, 270, 520)],
    4: [[(0.22, 0.05), (0.15, 0.6), (0.85, 0.6)], [(0.68, 0.3), (0.66, 0.95)]],
    5: [[(0.78, 0.05), (0.32, 0.05), (0.27, 0.45)] + _arc(0.48, 0.69, 0.3, 0.26, 215, 500)],
    6: [[(0.68, 0.05), (0.42, 0.3)] + _arc(0.5, 0.7, 0.27, 0.25, 200, 560)],
    7: [[(0.15, 0.07), (0.85, 0.07), (0.4, 0.95)]],
    8: [_arc(0.5, 0.26, 0.22, 0.21, 0, 360), _arc(0.5, 0.72, 0.27, 0.23, 0, 360)],
    9: [_arc(0.48, 0.3, 0.26, 0.25, 0, 360), [(0.74, 0.3), (0.68, 0.95)]],
}


def to_pad(point, pad: int, margin: float = 0.12) -> tuple[float, float]:
    """A point of the unit box above -> pixels of a pad `pad` pixels wide, `margin` of it left free on each side."""
    return tuple(margin * pad + (1 - 2 * margin) * pad * v for v in point)


def draw_on_pad(pad, strokes, pad_pixels: int) -> None:
    """Draw `strokes` on 04's DrawingPad as a mouse would: press, drag through every point, release.

    matplotlib hands these events to the pad's handlers exactly as it hands
    over a real mouse's, so the pad paints, prepares and classifies after
    each stroke as it does in the window (`pad.predictions` gets one answer
    per stroke). Used by tests/test_draw.py and benchmarks/draw_replay.py.
    """
    from matplotlib.backend_bases import MouseEvent

    canvas = pad.fig.canvas
    # A window redraws when it is idle, once for many events; Agg would redraw the whole
    # figure for every single event (seconds per digit), so the replay skips the redraw.
    canvas.draw_idle = lambda *args, **kwargs: None

    def send(name, point, **kw):
        x, y = pad.ax_pad.transData.transform(to_pad(point, pad_pixels))
        canvas.callbacks.process(name, MouseEvent(name, canvas, x, y, **kw))

    for stroke in strokes:
        send("button_press_event", stroke[0], button=1)
        for point in stroke[1:]:
            send("motion_notify_event", point, buttons={1})
        send("button_release_event", stroke[-1], button=1)
