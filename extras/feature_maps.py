"""06's cnn_feature_maps.png: one test digit as conv1 and conv2 see it, 96 small numbered maps.

06_cnn_mnist.py points here: its step 5 computes the maps with its own
`CNN.feature_maps` (what conv1 and conv2 output, after the ReLU) and calls
`plot` below to draw them, next to cnn_filters.png (map i of conv1 comes
from filter i).

Run it
    python 06_cnn_mnist.py                         # cnn_feature_maps.png among 06's figures
    python 06_cnn_mnist.py --pixels shuffled       # the same maps for a CNN that never saw the layout

Why a file of its own: what the maps ARE is 06's (its CNN.feature_maps, its
section 5 comment); laying out 96 tiles with gaps and numbers is about 45
lines of matplotlib that teach matplotlib, not convolutions. It uses
dl_utils and libraries, never a lesson: the model arrives as an argument.
"""

from pathlib import Path

import torch

import dl_utils
import matplotlib.pyplot as plt  # after dl_utils, which picks the file-only backend when there is no screen


def tile_maps(maps: torch.Tensor, columns: int):
    """(C, H, W) feature maps -> one (rows * (H + gap), columns * (W + gap)) array, each map scaled to its max.

    One picture with C tiles draws far faster than C small plots. The gaps
    are NaN (drawn white) and leave room above each tile for its number.
    """
    channels, height, width = maps.shape
    rows, gap = -(-channels // columns), max(2, height // 4)  # ceil(C / columns) rows
    picture = torch.full((rows * (height + gap), columns * (width + gap)), float("nan"))
    for channel, image in enumerate(maps):
        top, left = (channel // columns) * (height + gap) + gap, (channel % columns) * (width + gap)
        picture[top:top + height, left:left + width] = image / image.max() if image.max() > 0 else image
    return picture.numpy()


def plot(model, image: torch.Tensor, label: int, path, *, mean: float, std: float, show: bool,
         note: str = "defaults") -> Path:
    """cnn_feature_maps.png: one normalised (1, 28, 28) digit, its 32 conv1 and its 64 conv2 maps, numbered."""
    model.eval()
    with torch.no_grad():
        conv1, conv2 = model.feature_maps(image.unsqueeze(0))  # (1, 32, 28, 28), (1, 64, 14, 14)
    fig, axes = plt.subplots(1, 3, figsize=(15, 8.2), gridspec_kw={"width_ratios": [1.2, 1.9, 3]})
    axes[0].imshow((image[0].cpu() * std + mean).numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"input: a {label}\n(1 x 28 x 28)")
    axes[0].axis("off")
    cmap = plt.get_cmap("gray").with_extremes(bad="white")  # the gaps between the maps
    for ax, maps, columns, text in (
        (axes[1], conv1[0].cpu(), 4, "conv1 + ReLU: 32 maps of 28 x 28\nmap i = filter i of cnn_filters.png: bright = "
         "its\npattern is there (edges of the strokes, each\nfilter its own direction; a grey background\n= it fires "
         "on empty space too)"),
        (axes[2], conv2[0].cpu(), 8, "conv2 + ReLU: 64 maps of 14 x 14 (after pooling)\neach combines all 32 conv1 "
         "maps: larger parts of the digit\n(a bar, a corner, a stroke end); black = not found here")):
        height, width = maps.shape[1:]
        gap = max(2, height // 4)  # as in tile_maps
        ax.imshow(tile_maps(maps, columns), cmap=cmap, vmin=0, vmax=1)  # ReLU output is never negative
        for channel in range(len(maps)):  # each map's number, in the gap above it
            ax.text((channel % columns) * (width + gap) + width / 2, (channel // columns) * (height + gap) + gap - 0.5,
                    str(channel), ha="center", va="bottom", fontsize=7)
        ax.set_title(text, fontsize=10)
        ax.axis("off")
    fig.suptitle("One test digit on its way through the CNN (each small map is scaled to its own maximum)"
                 f"\nsettings: {note}", fontsize=12)
    return dl_utils.finish_figure(fig, path, show=show)
