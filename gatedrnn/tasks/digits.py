"""scikit-learn's bundled 8x8 handwritten digits (UCI ML, 1797 images), read pixel by
pixel: 64 steps of one feature (pixel / 16), 10 classes.

Split once with a fixed seed, stratified by class: 70% train, 10% validation, 20%
test (1257 / 180 / 360). ``pdigits`` reads the pixels in a fixed random order
(``numpy.random.default_rng(0).permutation(64)``), the small cousin of permuted MNIST.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ClassificationTask, Split, Splits

SPLIT_SEED = 0
PERMUTATION_SEED = 0


class Digits(ClassificationTask):
    name = "digits"
    description = "scikit-learn 8x8 digits pixel by pixel, 64 steps, 10 classes (1257/180/360)"
    input_size, output_size, seq_len = 1, 10, 64
    defaults = {"hidden": 128, "epochs": 40, "batch_size": 50, "lr": 2e-2, "head": "mean"}
    permuted = False

    def load(self) -> Splits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        pixels = digits.data.astype(np.float32) / 16.0  # (1797, 64), in [0, 1]
        if self.permuted:
            pixels = pixels[:, np.random.default_rng(PERMUTATION_SEED).permutation(64)]
        labels = digits.target.astype(np.int64)
        rest_x, test_x, rest_y, test_y = train_test_split(
            pixels, labels, test_size=0.2, stratify=labels, random_state=SPLIT_SEED)
        train_x, val_x, train_y, val_y = train_test_split(
            rest_x, rest_y, test_size=180, stratify=rest_y, random_state=SPLIT_SEED)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            return Split(torch.from_numpy(x).unsqueeze(-1), torch.from_numpy(y))  # (N, 64, 1), (N,)

        return Splits(split(train_x, train_y), split(val_x, val_y), split(test_x, test_y))


class PermutedDigits(Digits):
    name = "pdigits"
    description = "digits with a fixed permutation of the 64 pixels"
    permuted = True
