"""Data augmentation for 06: train on randomly rotated and shifted digits.

06_cnn_mnist.py points here: `python 06_cnn_mnist.py --augment` wraps its
training loader in `AugmentedLoader` below (06's section 4); validation and
test images stay untouched, so the accuracies stay comparable.

Run it
    python 06_cnn_mnist.py --augment                       # compare with a run without it
    python 06_cnn_mnist.py --augment --out-dir outputs/cnn_augment

Why a file of its own: it is a side experiment (one flag, off by default),
and its 40 lines teach affine maths on whole batches, not convolutions; in 06
it sat between the network and the figures. It uses dl_utils' conventions
and libraries, never a lesson.
"""

import math

import torch
from torch import nn


class AugmentedLoader:
    """Wraps a training loader; every batch gets small random rotations and shifts.

    Data augmentation shows the network a slightly different version of each
    digit every epoch, so it learns "a 7 tilted a bit is still a 7" instead of
    memorising exact pixels (see "Regularization" in ML_CONCEPTS_EXPLAINED.md).
    The whole batch is transformed at once with `affine_grid` + `grid_sample`
    (one random rotation + shift per image, computed as tensor maths), so it
    costs far less than per-image PIL transforms. `padding_mode="border"`
    fills the pixels rotated in from outside with the edge value, which in
    MNIST is background. Use it for training only: validation and test
    images must stay untouched.
    """

    def __init__(self, loader, *, max_degrees: float = 10.0, max_shift: float = 2.0, seed: int = 0):
        self.loader, self.max_degrees, self.max_shift = loader, max_degrees, max_shift
        self.dataset = loader.dataset
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            yield self.augment(images), labels

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, 1, 28, 28): each image turned by up to max_degrees and moved by up to max_shift px."""
        n, _, height, width = images.shape
        angle = (torch.rand(n, generator=self.generator) * 2 - 1) * math.radians(self.max_degrees)
        # affine_grid measures shifts in units of half the image: 2 px of 28 -> 2 / 14.
        shift = (torch.rand(n, 2, generator=self.generator) * 2 - 1) * self.max_shift * 2 / width
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(images)  # (n, 2, 3): one 2x3 matrix each
        grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        return nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)
