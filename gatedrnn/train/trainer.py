"""One training run: data, model, optimiser, the epoch loop, checkpoints and the run
directory. ``gatedrnn train`` is a thin wrapper around :func:`train`.

The run directory ``out`` holds

* ``config.json``: the resolved :class:`~gatedrnn.train.config.TrainConfig`, and under
  ``task_options`` the task's :meth:`~gatedrnn.tasks.Task.options` (e.g. the text
  corpus' SHA-256; a resume refuses data that differ);
* ``metrics.jsonl``: one JSON line per epoch: ``epoch``, ``train_loss`` (the task's
  loss, without the ``l2`` term), ``validation_<metric>``, ``validation_loss``, ``lr``
  (at the end of the epoch) and ``seconds``;
* ``checkpoints/``: see :mod:`gatedrnn.train.checkpoint`;
* ``summary.json``: the test metric of the best-validation weights and the facts of
  the run (parameters, seconds, ``world_size``, package versions);
* ``curves.png``: the learning curves; ``tensorboard/`` with ``--tensorboard``.

On CPU, training flushes denormal floats to zero (``torch.set_flush_denormal``):
they arise in the backward pass of long sequences with sparse inputs and made
``torch.nn.LSTM`` 9x slower on the adding problem here. And with glibc it keeps freed
memory for reuse (:func:`reuse_freed_memory`), for the rest of the process: a 784-step
step's buffers (hundreds of MB) were otherwise mapped afresh and page-faulted in every
step, 30% of its CPU time.

Reproducibility: on CPU the same configuration and number of threads give the same
``metrics.jsonl`` (all but ``seconds``) and the same weights. The data order depends only on the seed
and the epoch (``DistributedSampler``); the model's initialisation and dropout draw
from torch's global generator, whose state is checkpointed, so a run resumed from
epoch k ends exactly as the uninterrupted run.

Example::

    >>> from gatedrnn.train import TrainConfig, train
    >>> summary = train(TrainConfig(task="mnist1d", cell="janet", epochs=2, limit=200),
    ...                 "runs/example", progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .. import __version__, backends, tasks
from ..tasks import Split, Task
from . import checkpoint
from .config import GENERIC_DEFAULTS, TASK_OPTIONS, TrainConfig
from .distributed import World, all_sum, any_true, gather_objects, setup, teardown
from .runs import new_model

__all__ = ["TrainingError", "RunExists", "NonFiniteLoss", "train", "read_metrics", "l2_penalty",
           "reuse_freed_memory"]

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


class TrainingError(RuntimeError):
    """A run that cannot start or go on; the message says why and what to do."""


class RunExists(TrainingError):
    pass


class NonFiniteLoss(TrainingError):
    pass


def read_metrics(out: Path) -> List[Dict[str, Any]]:
    """The rows of ``out/metrics.jsonl`` (empty if there is none)."""
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _versions() -> Dict[str, str]:
    return {"gatedrnn": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return kind[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "cosine":  # decays per step to 0 at the last step
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def l2_penalty(module: nn.Module, coefficient: float) -> torch.Tensor:
    r"""The L2 term :math:`\frac{\lambda}{2} \sum_w \lVert w \rVert^2` over every parameter
    of ``module`` whose name has no ``bias`` in it, :math:`\lambda` = ``coefficient``.

    It is TensorFlow's ``coefficient * tf.nn.l2_loss(w)`` summed over those weights, as
    the JANET authors add it to their loss; its gradient :math:`\lambda w` is that of
    ``torch.optim.Adam(weight_decay=coefficient)`` restricted to the weights, and it is
    clipped with the rest of the gradient. A 0-dim tensor.

    Example::

        >>> layer = nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        >>> float(l2_penalty(layer, 0.1))  # 0.1 / 2 * (1 + 4); the bias does not count
        0.25
    """
    weights = [parameter for name, parameter in module.named_parameters() if "bias" not in name]
    if not weights:
        return torch.zeros(())
    return coefficient / 2 * torch.stack([w.pow(2).sum() for w in weights]).sum()


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the next allocations of this process:
    no ``mmap`` for large blocks (``M_MMAP_MAX = 0``) and no trimming of the heap
    (``M_TRIM_THRESHOLD = -1``). True if it applied (glibc), False elsewhere.

    torch's CPU allocator does not cache. glibc serves every block above its mmap
    threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on free, so the
    (T, B, G*H) buffers of a long sequence (160 MB at T = 784, B = 200, G*H = 256) are
    zero-filled and page-faulted in every training step. Measured on the 2-core
    AVX-512 EPYC, one thread, the 2-layer JANET-paper models (T 784, B 200, H 128),
    interleaved in one process: CPU time per step 2.36 -> 1.65 s (JANET, native), 3.66 ->
    2.51 s (LSTM, torch's kernel), 3.15 -> 2.33 s (GRU, native); minor page faults per
    step 372,000 -> 20,000. The process then keeps its peak heap until it exits.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))


def _eval_batch(config: TrainConfig, task: Task) -> int:
    # large batches for short sequences, bounded so (T, B, H) activations stay small
    return max(config.batch_size, min(1000, 65536 // task.seq_len))


def evaluate(model: nn.Module, task: Task, split: Split, world: World, batch_size: int) -> Tuple[float, float]:
    """The task's metric and mean loss on ``split``, each process scoring every
    ``world.size``-th example."""
    model.eval()
    total, loss_total, count = 0.0, 0.0, 0
    indices = torch.arange(world.rank, len(split), world.size)
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start: start + batch_size]
            output, target = model(split.x[chunk].to(world.device)), split.y[chunk].to(world.device)
            batch_total, batch_count = task.score(output, target)
            loss_total += float(task.loss(output, target)) * batch_count  # task.loss: the mean over what score counts
            total, count = total + batch_total, count + batch_count
    total, loss_total, count = all_sum(world, (total, loss_total, count))
    return total / count, loss_total / count


def _summary_writer(tensorboard: bool, world: World, out: Path):
    """A TensorBoard writer into ``out/tensorboard`` on rank 0 when asked for, else None."""
    if not (tensorboard and world.is_main):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise TrainingError("--tensorboard needs the tensorboard package: pip install tensorboard") from error
    return SummaryWriter(str(out / "tensorboard"))


class _Run:
    """The state of one run between epochs (kept in one place so that a checkpoint is
    exactly this object's contents).

    A run over another data order (the truncated-BPTT :class:`~gatedrnn.train.tbptt.StreamRun`)
    overrides :meth:`prepare_training_data`, :meth:`training_losses`, :meth:`evaluate` and
    :meth:`sample_input`; the epoch loop, the optimiser step, checkpoints and metrics stay here."""

    #: the progress bar's unit, the name of a step in messages, and the bar's rate
    unit, step_name, rate = "batch", "step", "seq_per_s"

    def __init__(self, config: TrainConfig, task: Task, splits, out: Path, world: World,
                 progress: bool, tensorboard: bool) -> None:
        self.config, self.task, self.splits, self.out, self.world = config, task, splits, out, world
        self.progress = progress and world.is_main
        torch.manual_seed(config.seed)  # the initial weights, then dropout, draw from it
        self.model = new_model(config, task).to(world.device)
        self.batch_size = config.batch_size // world.size
        self.steps_per_epoch = self.prepare_training_data()
        self.optimizer = _optimizer(config, self.model.parameters())
        self.scheduler = _scheduler(config, self.optimizer, config.epochs * self.steps_per_epoch)
        self.trained = (DistributedDataParallel(self.model) if world.size > 1 else self.model)
        self.epoch = 0
        self.best: Optional[Dict[str, float]] = None
        self.writer = _summary_writer(tensorboard, world, out)

    def prepare_training_data(self) -> int:
        """Set up the training data order (a ``DistributedSampler``: seed + epoch); the
        optimiser steps per epoch."""
        self.sampler = DistributedSampler(range(len(self.splits.train)), num_replicas=self.world.size,
                                          rank=self.world.rank, shuffle=True, seed=self.config.seed)
        return math.ceil(len(self.sampler) / self.batch_size)

    # -- checkpoints -----------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint after ``self.epoch`` (every process takes part; rank 0 writes)."""
        rng = gather_objects(self.world, torch.get_rng_state())
        cuda_rng = gather_objects(self.world, torch.cuda.get_rng_state(self.world.device)
                                  if self.world.device.type == "cuda" else None)
        if not self.world.is_main:
            return
        optimizer_tensors, optimizer_rest = checkpoint.flatten_optimizer(self.optimizer.state_dict())
        trainer_tensors = dict(optimizer_tensors)
        for rank, state in enumerate(rng):
            trainer_tensors[f"rng.torch.rank{rank}"] = state
        for rank, state in enumerate(cuda_rng):
            if state is not None:
                trainer_tensors[f"rng.cuda.rank{rank}"] = state
        record = {"optimizer": optimizer_rest, "scheduler": self.scheduler.state_dict(),
                  "best": self.best, "world_size": self.world.size}
        checkpoint.save(self.out / "checkpoints", self.epoch, self.model.state_dict(), trainer_tensors, record)

    def restore(self) -> bool:
        """Load the last checkpoint if there is one; True if one was loaded."""
        loaded = checkpoint.load(self.out / "checkpoints")
        if loaded is None:
            return False
        record, model_state, trainer_tensors = loaded
        if record["world_size"] != self.world.size:
            raise TrainingError(f"the checkpoint in {self.out} was written by {record['world_size']} "
                                f"process(es); resume it with the same number, not {self.world.size}")
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(checkpoint.unflatten_optimizer(trainer_tensors, record["optimizer"]))
        self.scheduler.load_state_dict(record["scheduler"])
        self.epoch, self.best = record["epoch"], record["best"]
        torch.set_rng_state(trainer_tensors[f"rng.torch.rank{self.world.rank}"])
        if self.world.device.type == "cuda":
            torch.cuda.set_rng_state(trainer_tensors[f"rng.cuda.rank{self.world.rank}"], self.world.device)
        return True

    # -- the loop --------------------------------------------------------------------
    def training_losses(self) -> Iterator[Tuple[torch.Tensor, int]]:
        """This epoch's training losses, one per optimiser step, each with the number of
        targets it is the mean over: this process' share of shuffled batches."""
        self.sampler.set_epoch(self.epoch)
        order = torch.tensor(list(self.sampler))
        train = self.splits.train
        for start in range(0, len(order), self.batch_size):
            chunk = order[start: start + self.batch_size]
            x, y = train.x[chunk].to(self.world.device), train.y[chunk].to(self.world.device)
            yield self.task.loss(self.trained(x), y), len(chunk)

    def train_epoch(self) -> float:
        """One optimiser step per loss of :meth:`training_losses`; the mean training loss
        over all processes."""
        self.trained.train()
        loss_sum, seen = 0.0, 0
        started = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch}/{self.config.epochs}",
                   unit=self.unit, leave=False, dynamic_ncols=True,
                   disable=None if self.progress else True)  # None: off when stderr is no terminal
        with bar:
            for step, (loss, count) in enumerate(self.training_losses(), 1):
                value = loss.item()
                if any_true(self.world, not math.isfinite(value)):
                    raise NonFiniteLoss(
                        f"the training loss became non-finite ({value}) at epoch {self.epoch}, "
                        f"{self.step_name} {step}; training stopped. The last good checkpoint "
                        f"(epoch {self.epoch - 1}) is in {self.out / 'checkpoints'}. Try a lower --lr or a --clip.")
                self.optimizer.zero_grad(set_to_none=True)
                if self.config.l2 > 0:
                    loss = loss + l2_penalty(self.model, self.config.l2)
                loss.backward()
                if self.config.clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
                self.optimizer.step()
                self.scheduler.step()
                loss_sum, seen = loss_sum + value * count, seen + count
                bar.update()
                rate = seen * self.world.size / (time.perf_counter() - started)
                bar.set_postfix({"loss": f"{loss_sum / seen:.4f}", self.rate: f"{rate:.0f}"})
        loss_sum, seen = all_sum(self.world, (loss_sum, seen))
        return loss_sum / seen

    def evaluate(self, split: Split) -> Tuple[float, float]:
        """The task's metric and mean loss on ``split`` (all processes together)."""
        return evaluate(self.model, self.task, split, self.world, _eval_batch(self.config, self.task))

    def sample_input(self) -> torch.Tensor:
        """Two training inputs of the model, (2, T, I), on the run's device (for naming the
        backend the recurrent layer runs on)."""
        return self.splits.train.x[:2].to(self.world.device)

    def improved(self, value: float, loss: float) -> bool:
        """Whether this epoch's validation ``value`` (the metric) and ``loss`` beat the best."""
        if self.best is None:
            return True
        if self.config.best_by == "loss":
            return loss < self.best["loss"]
        best = self.best["value"]
        return value > best if self.task.higher_is_better else value < best

    def run_epochs(self) -> None:
        metric = self.task.metric
        while self.epoch < self.config.epochs:
            self.epoch += 1
            started = time.perf_counter()
            train_loss = self.train_epoch()
            validation, validation_loss = self.evaluate(self.splits.validation)
            seconds = time.perf_counter() - started
            row = {"epoch": self.epoch, "train_loss": train_loss, f"validation_{metric}": validation,
                   "validation_loss": validation_loss, "lr": self.scheduler.get_last_lr()[0],
                   "seconds": round(seconds, 3)}
            better = self.improved(validation, validation_loss)
            if better:
                self.best = {"epoch": self.epoch, "value": validation, "loss": validation_loss}
            if self.world.is_main:
                # the metrics row first: a checkpoint always has its row (resume drops later rows)
                with open(self.out / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                if better:
                    checkpoint.save_best(self.out / "checkpoints", self.model.state_dict(), self.epoch, validation)
                if self.writer is not None:
                    for key in ("train_loss", f"validation_{metric}", "lr"):
                        self.writer.add_scalar(key, row[key], self.epoch)
            self.save()
            if self.progress:
                tqdm.write(f"epoch {self.epoch:3d}/{self.config.epochs}  train_loss {train_loss:.4f}  "
                           f"validation_{metric} {validation:.4f}  {seconds:.1f} s" + ("  *" if better else ""))

    def test(self) -> float:
        self.model.load_state_dict(checkpoint.load_best(self.out / "checkpoints"))
        return self.evaluate(self.splits.test)[0]


def _prepare_out(out: Path, config: TrainConfig, resume: bool, world: World,
                 task_options: Dict[str, Any]) -> None:
    """Refuse to overwrite a run; on ``resume`` check the stored configuration and the
    task's options (its data's facts, e.g. a corpus' SHA-256) match.

    A resumed run may ask for more ``epochs`` than it was started with when its
    learning rate is constant: it goes on as if it had been started with them."""
    stored_path = out / "config.json"
    # every process looks before the main one writes: the all-reduce is the barrier
    if any_true(world, out.exists() and any(out.iterdir()) and not resume):
        raise RunExists(f"the run directory {out} exists and is not empty; pass --resume to continue "
                        f"that run, or choose another --out")
    if resume and stored_path.exists():
        stored = json.loads(stored_path.read_text())
        # a field missing from a run written before it existed had its generic default
        stored = {key: stored.get(key, GENERIC_DEFAULTS.get(key, TrainConfig.default(key)))
                  for key in config.to_dict()}
        differing = sorted(key for key, value in config.to_dict().items() if stored[key] != value)
        if "epochs" in differing and config.schedule == "constant" and stored["epochs"] < config.epochs:
            differing.remove("epochs")  # extended: the epochs done are those of the longer run
        if differing:
            details = ", ".join(f"{key}: {stored[key]!r} -> {getattr(config, key)!r}" for key in differing)
            hint = ("; a run on --schedule constant can go on to more epochs, never fewer; a cosine "
                    "schedule's learning rate depends on the total, so its epochs are fixed"
                    if "epochs" in differing else "")
            raise TrainingError(f"cannot resume {out}: its configuration differs ({details}){hint}")
        task_options = json.loads(json.dumps(task_options))  # as JSON gives them back
        stored_options = json.loads(stored_path.read_text()).get(TASK_OPTIONS, task_options)
        if stored_options != task_options:
            raise TrainingError(f"cannot resume {out}: the task's data differs (stored {stored_options}, "
                                f"now {task_options})")
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json(stored_path, {**config.to_dict(), TASK_OPTIONS: task_options})


def _truncate_metrics(out: Path, epoch: int) -> None:
    """Keep the metrics rows of epochs up to the checkpoint's (later ones are redone)."""
    rows = [row for row in read_metrics(out) if row["epoch"] <= epoch]
    temporary = out / ".metrics.jsonl.tmp"
    temporary.write_text("".join(json.dumps(row) + "\n" for row in rows))
    temporary.replace(out / "metrics.jsonl")


def _run_class(task: Task) -> type:
    """:class:`_Run`, or for a language-model task the truncated-BPTT run."""
    if isinstance(task, tasks.LanguageModelTask):
        from .tbptt import StreamRun

        return StreamRun
    return _Run


def train(config: TrainConfig, out, resume: bool = False, tensorboard: bool = False,
          progress: bool = True) -> Dict[str, Any]:
    """Train, validate every epoch, test the best-validation weights; return the summary.

    Args:
        config: the run's configuration (``None`` hyperparameters take the task's defaults).
        out: the run directory; refused if it exists and is not empty, unless ``resume``.
        resume: continue from the last checkpoint in ``out`` (or start, if there is none).
        tensorboard: also write TensorBoard scalars to ``out/tensorboard``.
        progress: show a progress bar and one line per epoch (rank 0 only).

    Raises:
        ValueError: a bad option (unknown task or cell, out-of-range value).
        gatedrnn.tasks.DataUnavailable: the task's data is missing.
        TrainingError: the run directory exists, a resume does not match, or the loss
            became non-finite (:class:`NonFiniteLoss`; the last good checkpoint stays).
    """
    out = Path(out)
    task = tasks.get(config.task, data_dir=config.data_dir, seq_len=config.seq_len, delay=config.delay)
    config = config.for_task(task)
    world = setup(config.device)
    if world.device.type == "cpu":
        # Denormal floats appear in the backward of long, sparse sequences and slow the CPU
        # down up to 9x (measured: torch.nn.LSTM on the adding problem); flush them to 0.
        torch.set_flush_denormal(True)
        reuse_freed_memory()
    try:
        if config.batch_size % world.size:
            raise ValueError(f"batch_size {config.batch_size} must be a multiple of the "
                             f"{world.size} processes (it is the global batch)")
        splits = task.load().head(config.limit)  # before touching out: missing data leaves no trace
        _prepare_out(out, config, resume, world, task.options())
        run = _run_class(task)(config, task, splits, out, world, progress, tensorboard)
        restored = run.restore() if resume else False
        if world.is_main:
            _truncate_metrics(out, run.epoch if restored else 0)
        started = time.perf_counter()
        run.run_epochs()
        test_value = run.test()
        summary = _summary(run, test_value, time.perf_counter() - started)
        if world.is_main:
            checkpoint.write_json(out / "summary.json", summary)
            from ..inspect.plots import learning_curves

            learning_curves({config.cell: read_metrics(out)}, task.metric, out / "curves.png")
            if run.writer is not None:
                run.writer.close()
        return summary
    finally:
        teardown(world)


def _summary(run: _Run, test_value: float, wall_seconds: float) -> Dict[str, Any]:
    rows = read_metrics(run.out) if run.world.is_main else []
    seconds = sum(row["seconds"] for row in rows)
    metric = run.task.metric
    sample = run.sample_input()
    layer = getattr(run.model, "recurrent", None)
    if hasattr(layer, "backend"):
        backend = backends.resolve(layer.backend, layer, sample.transpose(0, 1))
    else:  # the Transformer (torch's modules) or a minimal RNN (its parallel scan)
        backend = getattr(layer, "mode", "torch")
    return {
        "task": run.task.name, "cell": run.config.cell, "metric": metric,
        f"test_{metric}": test_value,
        "best_epoch": run.best["epoch"], f"best_validation_{metric}": run.best["value"],
        "best_validation_loss": run.best.get("loss"),
        "epochs": run.config.epochs, "seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / max(len(rows), 1), 3),
        "wall_seconds_this_invocation": round(wall_seconds, 3),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "world_size": run.world.size, "device": str(run.world.device), "backend": backend,
        "task_options": run.task.options(), "baselines": run.splits.baselines,
        "train_examples": len(run.splits.train), "versions": _versions(),
    }
