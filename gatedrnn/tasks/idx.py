"""Sequential (Fashion-)MNIST from MNIST-format IDX files: pixel by pixel (784 steps of
one feature), permuted, or row by row (28 steps of 28 features); the sequences are
made by :class:`gatedrnn.tasks.pixels.PixelSequences` (pixels scaled to [0, 1], the
permuted order ``numpy.random.default_rng(0).permutation(784)``).

Splits follow TensorFlow's ``read_data_sets``, as the JANET paper ran them: the first
5000 training images are the validation set, the other 55000 the training set, and
the 10000 ``t10k`` images the test set.

Fashion-MNIST is read from ``/usr/share/datasets/fashion-mnist`` by default (Debian's
package ``dataset-fashion-mnist``); ``smnist`` / ``pmnist`` / ``mnist-rows`` read the
MNIST files from ``--data-dir``. Each directory needs ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``,
gzipped (``.gz``) or not.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .base import DataUnavailable
from .pixels import Images, PixelSequences

VALIDATION_SIZE = 5000
#: IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels)
IMAGES_MAGIC, LABELS_MAGIC = 0x0803, 0x0801


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataUnavailable(f"{path} is not an IDX file of the expected kind: "
                              f"magic number {found:#06x}, expected {magic:#06x}")
    dims = [int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(magic & 0xFF)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if body.size != int(np.prod(dims)):
        raise DataUnavailable(f"{path} is truncated: header says {dims}, found {body.size} values")
    return body.reshape(dims)


class IDXImages(PixelSequences):
    """Base of the IDX tasks: the images of ``data_dir``, split as TensorFlow's ``read_data_sets``."""

    default_dir: Optional[str] = None
    dataset: str = ""
    how_to_get: str = ""

    def __init__(self, data_dir: Optional[str] = None) -> None:
        super().__init__()
        chosen = data_dir if data_dir is not None else self.default_dir
        self.data_dir = None if chosen is None else Path(chosen)

    def options(self) -> Dict[str, Any]:
        return {"data_dir": None if self.data_dir is None else str(self.data_dir)}

    def _file(self, stem: str) -> Path:
        where = "no --data-dir given" if self.data_dir is None else f"looked in {self.data_dir}"
        if self.data_dir is not None:
            for name in (stem, stem + ".gz"):
                if (self.data_dir / name).is_file():
                    return self.data_dir / name
        raise DataUnavailable(
            f"task {self.name}: the {self.dataset} file {stem}[.gz] was not found ({where}). "
            f"{self.how_to_get}")

    def _read(self, prefix: str) -> Images:
        return Images(read_idx(self._file(f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC),  # (N, 28, 28)
                      read_idx(self._file(f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC))  # (N,)

    def images(self) -> Tuple[Images, Images, Images]:
        train, test = self._read("train"), self._read("t10k")
        return (Images(train.images[VALIDATION_SIZE:], train.labels[VALIDATION_SIZE:]),
                Images(train.images[:VALIDATION_SIZE], train.labels[:VALIDATION_SIZE]), test)


class FashionMNIST(IDXImages):
    name = "fmnist"
    description = "sequential Fashion-MNIST, pixel by pixel: 784 steps, 10 classes (55k/5k/10k)"
    default_dir = "/usr/share/datasets/fashion-mnist"
    dataset = "Fashion-MNIST"
    how_to_get = ("Install Debian's package (apt-get install dataset-fashion-mnist), or download "
                  "the four IDX files from https://github.com/zalandoresearch/fashion-mnist "
                  "and pass --data-dir DIR.")


class PermutedFashionMNIST(FashionMNIST):
    name = "pfmnist"
    description = "permuted sequential Fashion-MNIST: 784 steps in a fixed random order"
    permuted = True


class FashionMNISTRows(FashionMNIST):
    name = "fmnist-rows"
    description = "Fashion-MNIST row by row: 28 steps x 28 features"
    layout = "rows"


class SequentialMNIST(IDXImages):
    name = "smnist"
    description = "sequential MNIST, pixel by pixel (784 steps), from --data-dir, as in the JANET paper"
    dataset = "MNIST"
    how_to_get = ("Download the four MNIST IDX files (train-images-idx3-ubyte.gz, ...; e.g. from "
                  "https://ossci-datasets.s3.amazonaws.com/mnist/) and pass --data-dir DIR.")


class PermutedMNIST(SequentialMNIST):
    name = "pmnist"
    description = "permuted sequential MNIST (784 steps, fixed order), from --data-dir"
    permuted = True


class MNISTRows(SequentialMNIST):
    name = "mnist-rows"
    description = "MNIST row by row: 28 steps x 28 features, from --data-dir"
    layout = "rows"
