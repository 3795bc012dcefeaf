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
