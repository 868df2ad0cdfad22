r"""Character-level language modelling of real text: the Python standard library's source.

Every machine with Python has this corpus: :data:`TRAIN_MODULES`,
:data:`VALIDATION_MODULES` and :data:`TEST_MODULES` name 138 top-level modules of the
standard library (each one present from Python 3.10 to 3.14), read from the running
interpreter's ``sysconfig.get_paths()["stdlib"]`` (``<name>.py``, or
``<name>/__init__.py`` for a package such as ``pathlib`` in 3.13). The three splits are
different files: about 3.9 M characters train, 226 k validate and 213 k test on
Python 3.11. The text is that of the running interpreter's version, so the run's
``config.json`` records the corpus (:meth:`PythonSource.options`): the Python version,
the characters of each split and the SHA-256 of each split's text and of the whole.

The alphabet is fixed (:data:`VOCABULARY`): tab, newline, the 95 printable ASCII
characters and one symbol for everything else (the standard library has about 90 other
characters, in strings and comments).

A split is one stream: ``x`` (N,) int64 character ids and ``y`` (N,) the next
character, the files concatenated in the listed order. The trainer
(:mod:`gatedrnn.train.tbptt`) cuts each stream into ``batch_size`` contiguous rows and
walks them ``seq_len`` characters at a time, carrying the recurrent state across the
chunks (truncated backpropagation through time). The metric is bits per character on
the held-out files:

.. math:: \text{bpc} = -\frac{1}{N} \sum_t \log_2 p(y_t \mid y_{<t})

Baselines (``summary.json`` and the ``compare`` table), both fitted on the training
files and scored on the test files: ``unigram_bpc`` (character frequencies, add-one
smoothing) and ``kneser_ney_9gram_bpc``, an interpolated Kneser-Ney model of order 9
(eight characters of context; discounts ``n1 / (n1 + 2 n2)`` per order, Ney, Essen &
Kneser 1994). On the validation files each order from 2 to 9 beat the one below it
(Python 3.11: 3.37, 2.48, 2.01, 1.85, 1.81, 1.79, 1.77, 1.76 bits per character), so
the baseline takes 9, the highest order whose k-gram ids fit in int64.
They are cached under :func:`gatedrnn.tasks.base.cache_dir` by the corpus' SHA-256.

Example::

    >>> from gatedrnn import tasks
    >>> task = tasks.get("pysource")
    >>> splits = task.load()  # doctest: +SKIP
    >>> splits.train.x.shape, splits.train.y.shape  # doctest: +SKIP
    (torch.Size([3867424]), torch.Size([3867424]))
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sysconfig
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DataUnavailable, Split, Splits, Task, cache_dir

__all__ = ["VOCABULARY", "OTHER", "TRAIN_MODULES", "VALIDATION_MODULES", "TEST_MODULES",
           "LanguageModelTask", "PythonSource", "encode", "decode", "unigram_bits", "kneser_ney_bits"]

#: tab, newline, the printable ASCII characters; the last id stands for any other character
VOCABULARY = "\t\n" + "".join(chr(code) for code in range(32, 127)) + "\ufffd"
OTHER = len(VOCABULARY) - 1
#: the id of each ASCII code point (OTHER for the control characters but tab and newline)
_ASCII_IDS = np.full(128, OTHER, dtype=np.int64)
_ASCII_IDS[[ord(character) for character in VOCABULARY[:-1]]] = np.arange(OTHER)

VALIDATION_MODULES = ("argparse", "calendar", "configparser", "textwrap", "tokenize")
TEST_MODULES = ("csv", "difflib", "shutil", "threading")
TRAIN_MODULES = tuple("""
__future__ _collections_abc _compat_pickle _compression _markupbase _py_abc _pydecimal _pyio
_strptime _threading_local _weakrefset abc ast base64 bdb bisect bz2 cmd code codecs codeop
colorsys compileall contextlib contextvars copy copyreg cProfile dataclasses datetime decimal
dis doctest enum filecmp fileinput fnmatch fractions ftplib functools genericpath getopt
getpass gettext glob graphlib gzip hashlib heapq hmac imaplib inspect io ipaddress keyword
linecache locale lzma mailbox mimetypes modulefinder netrc ntpath nturl2path numbers opcode
operator optparse os pathlib pdb pickle pickletools pkgutil platform plistlib poplib posixpath
pprint profile pstats pty py_compile pyclbr pydoc queue quopri random reprlib rlcompleter runpy
sched secrets selectors shelve shlex signal site smtplib socket socketserver ssl stat statistics
string stringprep struct subprocess symtable tabnanny tarfile tempfile timeit token trace
traceback tracemalloc tty turtle types typing uuid warnings wave weakref webbrowser zipapp
zipfile zipimport
""".split())

#: the order of the Kneser-Ney baseline (the best on the validation files of orders 2..9)
NGRAM_ORDER = 9
_BASELINES_VERSION = 1  # bump when the baselines' definition changes (invalidates the cache)


def encode(text: str) -> Tensor:
    """Character ids of ``text``, (len(text),) int64; unknown characters map to :data:`OTHER`."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # one code point each
    ids = np.where(codes < len(_ASCII_IDS), _ASCII_IDS[np.minimum(codes, len(_ASCII_IDS) - 1)], OTHER)
    return torch.from_numpy(ids.astype(np.int64))


def decode(ids: Sequence[int]) -> str:
    """The text of character ids (:data:`OTHER` shows as U+FFFD)."""
    return "".join(VOCABULARY[int(i)] for i in ids)


# -- the corpus -------------------------------------------------------------------------


def stdlib_root() -> Path:
    """The running interpreter's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def module_path(name: str, root: Path) -> Path:
    """``root/<name>.py``, or ``root/<name>/__init__.py`` for a package."""
    module = root / f"{name}.py"
    return module if module.is_file() else root / name / "__init__.py"


def read_modules(names: Sequence[str], root: Path) -> List[str]:
    """The source text of each module (UTF-8, as the interpreter reads it)."""
    texts = []
    for name in names:
        path = module_path(name, root)
        if not path.is_file():
            raise DataUnavailable(
                f"task pysource reads the Python standard library's source, but {root} has no "
                f"{name}.py or {name}/__init__.py (some distributions ship only compiled files: "
                f"install the python3.X source package, e.g. Debian's libpython3.X-stdlib)")
        texts.append(path.read_text(encoding="utf-8"))
    return texts


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- baselines --------------------------------------------------------------------------


def unigram_bits(train: np.ndarray, test: np.ndarray, vocabulary: int) -> float:
    """Bits per character on ``test`` of the add-one smoothed character frequencies of ``train``."""
    counts = np.bincount(train, minlength=vocabulary) + 1.0  # (V,)
    log_p = np.log2(counts / counts.sum())
    return float(-log_p[test].mean())


def _grams(ids: np.ndarray, order: int, vocabulary: int) -> np.ndarray:
    """The id of the ``order``-gram ending at each position >= order - 1, (N - order + 1,)."""
    grams = np.zeros(len(ids) - order + 1, dtype=np.int64)
    for offset in range(order):
        grams = grams * vocabulary + ids[offset: len(ids) - order + 1 + offset]
    return grams


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` at each query found in the sorted ``keys``, 0 where it is absent."""
    where = np.searchsorted(keys, queries).clip(max=len(keys) - 1)
    return np.where(keys[where] == queries, values[where], 0)


def _discount(counts: np.ndarray) -> float:
    n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def kneser_ney_bits(train: np.ndarray, test: np.ndarray, vocabulary: int, order: int) -> float:
    r"""Bits per character on ``test`` of an interpolated Kneser-Ney model of ``train``.

    .. math::
        p_k(w \mid h) = \frac{\max(n_k(h w) - D_k, 0)}{\sum_v n_k(h v)}
            + \frac{D_k \, |\{v : n_k(h v) > 0\}|}{\sum_v n_k(h v)} \, p_{k-1}(w \mid h')

    with ``n_k`` the raw counts at the highest order and the continuation counts
    ``|{u : c(u h w) > 0}|`` below it, ``h'`` the context without its first character,
    ``p_0 = 1 / V``, and ``p_k = p_{k-1}`` where the context ``h`` was never seen. The
    first ``order - 1`` test characters use the orders their context allows. All
    counting is vectorised (``np.unique`` over k-gram ids): order 9 on 4 M characters
    takes about 5 s.

    Args:
        train, test: character ids, (N,) int64. vocabulary: V. order: 1 to 9.
    """
    if not 1 <= order <= 9:  # V^order must fit in int64 for V ~ 100
        raise ValueError(f"order must be in 1..9, got {order}")
    # counts per order: raw at the top, continuation counts below
    tables: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    keys, counts = np.unique(_grams(train, order, vocabulary), return_counts=True)
    tables[order] = keys, counts
    for k in range(order - 1, 0, -1):
        upper = tables[k + 1][0]
        tables[k] = np.unique(upper % vocabulary ** k, return_counts=True)
    log_p = np.full(len(test), -math.log(vocabulary))  # p_0: uniform
    for k in range(1, order + 1):
        keys, counts = tables[k]
        discount = _discount(counts)
        contexts = keys // vocabulary
        context_keys, inverse = np.unique(contexts, return_inverse=True)
        totals = np.bincount(inverse, weights=counts)  # sum_v n_k(h v)
        types = np.bincount(inverse).astype(np.float64)  # |{v : n_k(h v) > 0}|
        queries = _grams(test, k, vocabulary)  # (N - k + 1,)
        count = _lookup(keys, counts, queries).astype(np.float64)
        total = _lookup(context_keys, totals, queries // vocabulary)
        distinct = _lookup(context_keys, types, queries // vocabulary)
        lower = np.exp(log_p[k - 1:])
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        p = np.where(seen, (np.maximum(count - discount, 0.0) + discount * distinct * lower) / safe, lower)
        log_p[k - 1:] = np.log(p)
    return float(-log_p.mean() / math.log(2.0))


# -- the tasks --------------------------------------------------------------------------


class LanguageModelTask(Task):
    """A next-character task on streams of character ids, trained with truncated BPTT.

    Splits hold one stream each: ``x`` (N,) int64 ids and ``y`` (N,) the next ids. The
    model (:class:`gatedrnn.models.LanguageModel`) maps ids (B, T) to logits (B, T, V);
    ``seq_len`` is the truncation length T. Loss: mean cross-entropy; metric: bits per
    character (lower is better), summed over characters so chunks and processes add up.
    """

    metric = "bpc"
    per_step = True
    vocabulary: ClassVar[str] = VOCABULARY

    @property
    def higher_is_better(self) -> bool:
        return False

    def encode(self, text: str) -> Tensor:
        return encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return decode(ids)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        # output (B, T, V), target (B, T)
        return F.cross_entropy(output.flatten(0, 1), target.flatten())

    def score(self, output: Tensor, target: Tensor) -> Tuple[float, int]:
        nats = F.cross_entropy(output.flatten(0, 1), target.flatten(), reduction="sum")
        return float(nats) / math.log(2.0), target.numel()


class PythonSource(LanguageModelTask):
    name = "pysource"
    description = "next character of the Python standard library's source (bits per character)"
    input_size = output_size = len(VOCABULARY)
    defaults = {"hidden": 256, "layers": 1, "epochs": 10, "batch_size": 32, "lr": 2e-3,
                "optimizer": "adam", "clip": 5.0}

    def __init__(self, seq_len: int = 100) -> None:
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len (the truncated-BPTT length) must be a positive integer, "
                             f"got {seq_len!r}")
        self.seq_len = seq_len
        self._texts: Dict[str, str] = {}

    def texts(self) -> Dict[str, str]:
        """The text of each split (``train``, ``validation``, ``test``), read once."""
        if not self._texts:
            root = stdlib_root()
            for split, names in (("train", TRAIN_MODULES), ("validation", VALIDATION_MODULES),
                                 ("test", TEST_MODULES)):
                self._texts[split] = "".join(read_modules(names, root))
        return self._texts

    def options(self) -> Dict[str, Any]:
        texts = self.texts()
        return {"seq_len": self.seq_len,
                "corpus": f"Python {platform.python_version()} standard library",
                "sha256": _sha256("".join(texts.values())),
                "characters": {split: len(text) for split, text in texts.items()},
                "split_sha256": {split: _sha256(text) for split, text in texts.items()}}

    def baselines(self, ids: Dict[str, np.ndarray]) -> Dict[str, float]:
        """``unigram_bpc`` and ``kneser_ney_9gram_bpc`` on the test files, cached by SHA-256."""
        path = cache_dir() / "pysource" / f"baselines-{self.options()['sha256'][:16]}.json"
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("version") == _BASELINES_VERSION:
                return stored["baselines"]
        vocabulary = len(VOCABULARY)
        baselines = {"unigram_bpc": unigram_bits(ids["train"], ids["test"], vocabulary),
                     f"kneser_ney_{NGRAM_ORDER}gram_bpc":
                         kneser_ney_bits(ids["train"], ids["test"], vocabulary, NGRAM_ORDER)}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"version": _BASELINES_VERSION, "baselines": baselines}))
        temporary.replace(path)
        return baselines

    def load(self) -> Splits:
        streams = {split: encode(text) for split, text in self.texts().items()}
        splits = {split: Split(ids[:-1], ids[1:]) for split, ids in streams.items()}
        baselines = self.baselines({split: ids.numpy() for split, ids in streams.items()})
        return Splits(splits["train"], splits["validation"], splits["test"], baselines)
