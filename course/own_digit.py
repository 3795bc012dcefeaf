"""Your own digit: from any picture to MNIST's 28x28 (used by 04 and 06 --image).

A network only knows the kind of pictures it was trained on. Every MNIST
digit was made the same way (LeCun et al., 1998): white ink on black, the
digit scaled so its longest side is 20 pixels (keeping its shape), then
placed in a 28x28 field so that its centre of mass sits in the middle.
A phone photo of a digit on paper is nothing like that: dark ink on light,
uneven lighting, 3000 pixels, anywhere in the frame. prepare_digit_image
repeats MNIST's recipe on your picture; skip a step and accuracy drops.

    prepare_digit_image   any picture -> (original, digit28, tensor)
    predict_digit         the model's 10 probabilities for that tensor
    format_top_k          "Predicted digit: 7 (confidence 93.1%)" and the top 3
    plot_digit_prediction your picture | what the network saw | its probabilities
    classify_own_digit    the three above in a row, as 04 and 06 call them

Pillow does the image work (reading, turning by EXIF, resizing, bounding
boxes) and NumPy the arithmetic (sliding windows, least squares, weighted
means); the few steps neither offers well are written out, each saying why.
The lessons call these functions as dl_utils.prepare_digit_image and so on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from course.cli import CourseError
from course.records import finish_figure  # (it picks the plot backend before pyplot loads)

import matplotlib.pyplot as plt  # noqa: E402

MNIST_BOX = 20  # longest side of the digit in an MNIST image, in pixels
MNIST_SIZE = 28  # the whole image: the digit plus a 4-pixel black margin
MNIST_STROKE = 0.12  # MNIST's strokes are about 12% of the digit's longest side wide (median, measured)
_WORK_SIZE = 400  # we clean the picture at this size (longest side): sharp enough, and fast
_DISPLAY_SIZE = 1024  # the `original` returned for plotting is at most this big
_IMAGE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP"



# ---------------------------------------------------------------------------
# Pixels in, pixels out: small wrappers around Pillow
# ---------------------------------------------------------------------------
def _read_greyscale(path: Path) -> np.ndarray:
    """Open any picture Pillow can read as a greyscale array: 0.0 black ... 1.0 white."""
    if not path.is_file():
        raise CourseError(
            f"No picture at {path}{' (that is a folder)' if path.is_dir() else ''}. Check the spelling and "
            f"the folder (relative paths start from {Path.cwd()}), then pass the file, e.g. --image my_digit.png."
        )
    try:
        with Image.open(path) as image:
            image.draft("RGB", (2 * _DISPLAY_SIZE, 2 * _DISPLAY_SIZE))  # JPEG: decode a 12 MP photo at 1/4 size, fast
            image = ImageOps.exif_transpose(image)  # phones store "rotate me" in the file; apply it
            image.load()
    except UnidentifiedImageError:
        raise CourseError(
            f"{path} is not a picture Pillow can read (its content is not {_IMAGE_FORMATS}, whatever its name "
            "says). Save your digit as a PNG or JPEG from your paint program or phone, and pass that file."
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise CourseError(f"Could not read the picture {path} ({type(error).__name__}: {error}). It may be "
                            "truncated or damaged: export it again as a PNG or JPEG.") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greyscale
        pixels = np.asarray(image, dtype=np.float64)
        return np.clip(pixels / (65535.0 if pixels.max() > 255 else 255.0), 0, 1)
    transparent = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if transparent else "L")
    image.thumbnail((2 * _DISPLAY_SIZE, 2 * _DISPLAY_SIZE))  # plenty for a 20-pixel digit, and fast
    if transparent:
        # A transparent PNG from a paint program: the strokes are opaque, the
        # rest is see-through with any colour underneath. Put it on white
        # (or on black, if the strokes themselves are light) so it looks as
        # it did on screen.
        rgba = np.asarray(image, dtype=np.float64) / 255.0
        alpha, grey = rgba[..., 3], rgba[..., :3] @ [0.299, 0.587, 0.114]
        strokes_are_light = (grey * alpha).sum() > 0.5 * alpha.sum()
        backdrop = 0.0 if strokes_are_light else 1.0
        return grey * alpha + backdrop * (1 - alpha)
    return np.asarray(image, dtype=np.float64) / 255.0  # "L": luminance, the greyscale of TVs


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float array to (height, width) with Pillow's anti-aliased Lanczos filter."""
    image = Image.fromarray(array.astype(np.float32))  # mode "F": 32-bit float pixels
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.LANCZOS), dtype=np.float64)


def _fit(array: np.ndarray, longest: int) -> np.ndarray:
    """Resize so the longest side is `longest` pixels, keeping the aspect ratio."""
    height, width = array.shape
    scale = longest / max(height, width)
    return _resize(array, (max(1, round(height * scale)), max(1, round(width * scale))))


def _filter(array: np.ndarray, size: int, reduce) -> np.ndarray:
    """Sliding-window `reduce` (np.min, np.max, np.mean) over size x size squares, edges repeated.

    A square window equals a row window followed by a column window, so we
    do two cheap 1-D passes instead of one size*size pass. Not Pillow's
    MinFilter/MaxFilter: they give the same pixels but rank the whole
    size x size square at every pixel, so at the stroke-widening sizes
    (25 pixels and more) they took about 100 times as long as these two
    passes when we timed them; and Pillow's blurs take only 8-bit images,
    where ours are float.
    """
    if size <= 1:
        return array
    before, after = (size - 1) // 2, size // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(array, pad, mode="edge"), size, axis=axis)
        array = reduce(windows, axis=-1)
    return array


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of the smallest box holding every True pixel (Pillow's getbbox)."""
    left, top, right, bottom = Image.fromarray(mask.astype(np.uint8)).getbbox()
    return slice(top, bottom), slice(left, right)


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the brightness-weighted mean position; MNIST digits have it at (14, 14)."""
    rows, cols = np.indices(image.shape)
    return float(np.average(rows, weights=image)), float(np.average(cols, weights=image))


# ---------------------------------------------------------------------------
# Finding the ink
# ---------------------------------------------------------------------------
def _otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold: the cut that best splits the values into two groups (ink, paper).

    Tries every cut of a 256-bin histogram and keeps the one with the largest
    variance BETWEEN the two groups, which is the same as the smallest spread
    WITHIN each. No tuning, and it adapts to faint pencil as well as thick marker.
    Written out because neither Pillow nor NumPy has it (scikit-image and
    OpenCV do: a whole dependency for ten lines).
    """
    counts, edges = np.histogram(values, bins=256, range=(0.0, max(float(values.max()), 1e-6)))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)  # pixels at or below each cut
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1 + int(np.argmax(between[:-1]))])


def _paper_surface(work: np.ndarray) -> np.ndarray:
    """The brightness of the paper at every pixel, as a smooth quadratic surface.

    Least squares (np.linalg.lstsq) fits a + bx + cy + dx^2 + exy + fy^2 to
    the pixels. Ink is brighter than the fit (the picture is white-on-black
    by now), so we drop every pixel well above the surface and fit again:
    after a few rounds only paper is left. A quadratic can follow a lighting
    gradient or a darker corner, but not a pen stroke, however thick.
    """
    def basis(height, width):
        y, x = np.mgrid[0:height, 0:width]
        x, y = x / width - 0.5, y / height - 0.5
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)

    small = _fit(work, 64)  # the paper changes slowly: 64 pixels a side are enough
    features, values = basis(*small.shape), small.ravel()
    paper = np.ones(values.size, dtype=bool)
    for _ in range(6):
        coefficients = np.linalg.lstsq(features[paper], values[paper], rcond=None)[0]
        residual = values - features @ coefficients
        spread = 1.4826 * np.median(np.abs(residual[paper] - np.median(residual[paper])))  # robust std
        paper = residual < max(3 * spread, 0.02)
    return (basis(*work.shape) @ coefficients).reshape(work.shape)


def _keep_digit(mask: np.ndarray) -> np.ndarray:
    """Keep the digit's strokes; drop specks, and dark things at the picture's edge.

    A photo often catches the table beside the page, the paper's edge or a
    shadow: dark like ink, but touching the border, while a digit written on
    the page does not. We split the ink into connected blobs ("components"),
    drop specks of dust, and drop blobs touching the border, unless nothing
    else is left (a picture cropped tightly around its digit).
    """
    # Label the blobs on a coarse grid (about 100 cells a side; a cell is ink
    # if any of its pixels is): every ink cell takes the largest label among
    # its 8 neighbours (a 3x3 max filter) until nothing changes, so each blob
    # ends up with one label. Pillow and NumPy have no connected-component
    # labelling (scipy.ndimage.label does: not worth a dependency for one call).
    height, width = mask.shape
    cell = max(1, math.ceil(max(height, width) / 100))
    padded = np.pad(mask, ((0, -height % cell), (0, -width % cell)))
    coarse = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell).any(axis=(1, 3))
    labels = np.where(coarse, np.arange(1, coarse.size + 1).reshape(coarse.shape), 0)
    while True:
        grown = np.where(coarse, _filter(labels, 3, np.max), 0)
        if np.array_equal(grown, labels):
            break
        labels = grown
    labels = np.repeat(np.repeat(labels, cell, axis=0), cell, axis=1)[:height, :width] * mask
    area = np.bincount(labels.ravel(), minlength=labels.max() + 1)
    area[0] = 0  # label 0 is the paper
    blobs = np.flatnonzero(area >= max(4, 0.0005 * height * width))  # smaller ones are specks
    on_border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inside = np.setdiff1d(blobs, on_border)
    return np.isin(labels, inside if inside.size else blobs)


def _ink_map(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From a greyscale picture to (ink, mask): ink in [0, 1], 1 = full stroke; mask = surely ink.

    Returns white-on-black, like MNIST, whatever the picture's colours were.
    """
    # 1. Work at a fixed size: a 28-pixel scan and a 12-megapixel photo then
    #    need the same filter sizes, and the big one stays fast.
    work = _fit(grey, _WORK_SIZE)
    height, width = work.shape
    # 2. A slight blur: phone sensors and JPEG add speckles that are not ink.
    work = _filter(work, 3, np.mean)
    # 3. Is the ink darker or lighter than the paper? The border is almost all
    #    paper (a digit rarely touches all four edges), so its median is the
    #    paper's colour; the ink is whichever extreme of the picture lies
    #    farther from it. MNIST is white ink on BLACK: dark ink is inverted.
    band = max(1, min(height, width) // 20)
    border = np.concatenate([work[:band].ravel(), work[-band:].ravel(),
                             work[:, :band].ravel(), work[:, -band:].ravel()])
    paper = float(np.median(border))
    darkest, brightest = np.percentile(work, [0.1, 99.9])
    dark_ink = paper - darkest > brightest - paper
    if dark_ink:
        work = 1.0 - work
    # 4. Uneven light: a photo is brighter near the lamp, and grey paper is not
    #    black after inverting. Fit a smooth surface (a quadratic in x and y)
    #    through the paper, leaving out the ink, and subtract it: the paper
    #    becomes 0 everywhere, the ink stays bright. A shadow dims paper and
    #    ink alike, so on paper we also divide by the paper's brightness:
    #    ink half as dark as its paper counts the same in the light and in
    #    the shade.
    surface = _paper_surface(work)
    flat = work - surface
    if dark_ink:
        flat /= np.clip(1.0 - surface, 0.1, None)  # 1 - surface: the paper's brightness before inverting
    # 5. Which pixels are ink? Otsu's threshold, but never within the noise
    #    of the paper: most of a picture is paper, so the median and the
    #    spread of all pixels describe the paper. (The spread is measured by
    #    the MAD, the median distance from the median, which the few ink
    #    pixels cannot inflate as they would a standard deviation.)
    median = float(np.median(flat))
    ink = np.clip(flat - median, 0.0, None)  # paper at 0, ink above it
    noise = 6 * 1.4826 * float(np.median(np.abs(flat - median)))  # 6 standard deviations of the paper
    threshold = max(_otsu_threshold(ink), noise, 0.04)
    mask = _keep_digit(ink > threshold)
    if mask.sum() < max(10, height * width // 20000) or float(ink.max()) < 0.08:
        raise CourseError(
            "Found no digit in the picture: it looks blank (one colour, or contrast too faint to tell ink "
            "from paper). Write the digit large and dark (a felt pen is better than a pencil) on plain paper, "
            "fill most of the photo with it, and try again; in a paint program, use a thick brush."
        )
    # 6. Stretch the contrast: MNIST's strokes are 1.0 (pure white) in the
    #    middle and grey at the edges (anti-aliasing). The stroke's typical
    #    brightness becomes 1.0; pixels near the paper's noise level become 0.
    #    Anything far from a stroke is paper: set to exactly 0, as in MNIST.
    core = float(np.percentile(ink[mask], 75))
    floor = min(noise, 0.5 * threshold)
    ink = np.clip((ink - floor) / max(core - floor, 1e-6), 0.0, 1.0)
    ink *= _filter(mask.astype(np.float64), 2 * max(1, round(0.01 * _WORK_SIZE)) + 1, np.max)
    return ink, mask


# ---------------------------------------------------------------------------
# MNIST's pen: strokes about 12% of the digit wide
# ---------------------------------------------------------------------------
def _stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: 2 x area / outline length.

    A stroke of width w and length L covers w*L pixels and its outline is
    about 2L pixels long (both sides), so 2 * area / outline ~ w. The outline
    is the ink with fewer than 4 ink neighbours (up, down, left, right), four
    NumPy lines: Pillow's MinFilter would count 8 neighbours, and
    ImageMorph's "erosion4" treats the picture's edge as paper.
    """
    inner = mask.copy()  # pixels whose 4 neighbours are all ink
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return 2 * mask.sum() / max(1, (mask & ~inner).sum())


def _match_stroke_width(ink: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thicken thin strokes, and thin very thick ones, towards MNIST's pen width.

    MNIST's strokes are about 12% of the digit's size wide (median; 8% to 20%
    for nine digits in ten). A ballpoint line on a big page shrinks to a
    faint hairline at 20 pixels, and a fat marker fills a digit's loops:
    both look unlike anything the network was trained on. A max filter
    (each pixel takes the brightest value around it) widens every stroke by
    the filter's size minus one; a min filter narrows it the same way.
    """
    box = _bounding_box(mask)
    size = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
    width = _stroke_width(mask)
    if width < MNIST_STROKE * size:  # thinner than MNIST's typical pen: widen to it
        grow = 2 * round((MNIST_STROKE * size - width) / 2) + 1
        return _filter(ink, grow, np.max), _filter(mask, grow, np.max)
    if width > 2 * MNIST_STROKE * size:  # far thicker than almost all of MNIST: narrow a little
        shrink = 2 * round((width - 1.6 * MNIST_STROKE * size) / 2) + 1
        narrowed = _filter(mask, shrink, np.min)
        if narrowed.any():
            return _filter(ink, shrink, np.min), narrowed
    return ink, mask


# ---------------------------------------------------------------------------
# The recipe, the prediction, the figure
# ---------------------------------------------------------------------------
def prepare_digit_image(path: str | Path, *, mean: float, std: float) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Turn any picture of one digit into what an MNIST model expects.

    Returns (original, digit28, tensor):
      original  the picture as a greyscale array (0 black .. 1 white), at most
                1024 pixels a side, for showing next to the result;
      digit28   the 28x28 float array in [0, 1] the network sees: white ink on
                black, like MNIST;
      tensor    digit28 normalised with the training statistics `mean` and `std`
                (take them from the checkpoint), shape (1, 1, 28, 28).

    Works for phone photos and paint-program drawings, dark on light or light
    on dark, any size, anywhere in the frame, colour or greyscale, transparent
    PNGs. It expects ONE digit on plain paper that fills most of the frame:
    two digits become one squashed shape, and a small page on a dark desk
    looks like a big white blob. Look at the middle panel of
    plot_digit_prediction to check. Raises CourseError for a missing file,
    a file that is not a picture, or a picture with no visible ink.
    """
    path = Path(path).expanduser()
    grey = _read_greyscale(path)
    original = _fit(grey, _DISPLAY_SIZE) if max(grey.shape) > _DISPLAY_SIZE else grey
    # Greyscale, inverted if the paper is light, uneven light removed, contrast stretched:
    ink, mask = _ink_map(grey)
    # Bring the strokes to MNIST's width (see _match_stroke_width).
    ink, mask = _match_stroke_width(ink, mask)
    box = _bounding_box(mask)
    # Crop to the ink's bounding box: where the digit was in the picture no longer matters.
    digit = ink[box]
    # Scale so the longest side is 20 pixels, keeping the aspect ratio: a "1"
    # stays thin. Downscaling averages pixels, which gives the grey,
    # anti-aliased edges MNIST digits have.
    digit = np.clip(_fit(digit, MNIST_BOX), 0.0, 1.0)
    digit /= max(float(digit.max()), 1e-6)  # the brightest stroke is pure white again
    # Paste into a black 28x28 so the centre of mass lands on (14, 14), as
    # MNIST did. That is not the box's centre: a "7" has more ink at the top,
    # so its box sits lower. Clamped so no ink falls off the edge.
    row, col = center_of_mass(digit)
    top = int(np.clip(round(MNIST_SIZE / 2 - row), 0, MNIST_SIZE - digit.shape[0]))
    left = int(np.clip(round(MNIST_SIZE / 2 - col), 0, MNIST_SIZE - digit.shape[1]))
    digit28 = np.zeros((MNIST_SIZE, MNIST_SIZE))
    digit28[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    # Normalise exactly like the training images: (x - mean) / std.
    tensor = torch.from_numpy((digit28 - mean) / std).float().reshape(1, 1, MNIST_SIZE, MNIST_SIZE)
    return original, digit28, tensor


def predict_digit(model: nn.Module, tensor: torch.Tensor, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """The model's 10 probabilities (softmax of its logits) for one image, on the CPU."""
    model.eval()  # dropout off, batch norm uses its saved statistics
    with torch.no_grad():
        return torch.softmax(model(tensor.to(device)), dim=1)[0].cpu()


def format_top_k(probabilities: torch.Tensor, k: int = 3) -> str:
    """`Predicted digit: 7 (confidence 93.1%)` and the k most likely digits, one a line."""
    top = torch.topk(probabilities, k)
    lines = [f"Predicted digit: {int(top.indices[0])} (confidence {100 * float(top.values[0]):.1f}%)",
             f"Top {k}:"]
    lines += [f"  {rank}. {int(digit)}  {100 * float(p):5.1f}%"
              for rank, (digit, p) in enumerate(zip(top.indices, top.values), start=1)]
    return "\n".join(lines)


def classify_own_digit(model: nn.Module, path: str | Path, *, normalization: dict, out_path: str | Path,
                       model_name: str, device: torch.device | str = "cpu", show: bool = False) -> dict:
    """Prepare a picture, classify it and draw the result; returns the facts for the results JSON.

    The steps 04 and 06 share: prepare_digit_image -> predict_digit ->
    plot_digit_prediction. "report" holds the printable top-3 text.
    """
    original, digit28, tensor = prepare_digit_image(path, **normalization)
    probabilities = predict_digit(model, tensor, device=device)
    plot_digit_prediction(original, digit28, probabilities, out_path, show=show,
                          title=f"{Path(path).name}: {model_name} says {probabilities.argmax().item()}")
    return {"image": str(path), "image_prediction": int(probabilities.argmax()),
            "image_confidence": float(probabilities.max()), "report": format_top_k(probabilities)}


def plot_digit_prediction(original: np.ndarray, digit28: np.ndarray, probabilities: torch.Tensor,
                          path: str | Path, *, title: str = "Your digit", show: bool = False) -> Path:
    """Your picture, the 28x28 the network saw, and its 10 probabilities, side by side.

    If the middle panel does not look like an MNIST digit (white, centred,
    thick enough), the prediction cannot be trusted either: fix the picture.
    """
    probabilities = torch.as_tensor(probabilities).cpu()
    predicted = int(probabilities.argmax())
    fig, (ax_in, ax_seen, ax_bars) = plt.subplots(1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    ax_in.imshow(original, cmap="gray", vmin=0, vmax=1)
    ax_in.set_title("your picture (in greyscale)")
    ax_seen.imshow(digit28, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_seen.set_title("what the network sees (28x28)")
    for ax in (ax_in, ax_seen):
        ax.set_xticks([])
        ax.set_yticks([])
    colors = ["tab:green" if digit == predicted else "tab:gray" for digit in range(10)]
    bars = ax_bars.bar(range(10), 100 * probabilities.numpy(), color=colors)
    ax_bars.bar_label(bars, labels=[f"{100 * p:.0f}" if p >= 0.005 else "" for p in probabilities.tolist()],
                      fontsize=8)
    ax_bars.set(title=f"prediction: {predicted} ({100 * probabilities[predicted]:.1f}%)", xlabel="digit",
                ylabel="probability (%)", ylim=(0, 105), xticks=range(10))
    ax_bars.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return finish_figure(fig, path, show=show)
