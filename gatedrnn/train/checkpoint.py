"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

A run's ``checkpoints/`` directory holds

* ``model-EEEE.safetensors``: the model's weights after epoch EEEE (a plain
  ``state_dict``, loadable with ``safetensors.torch.load_file``);
* ``trainer-EEEE.safetensors``: the optimizer's tensors (``optimizer.<param>.<key>``)
  and the random number generator states (``rng.torch.rank<r>``, ``rng.cuda.rank<r>``);
* ``last.json``: the commit record: the epoch, the two file names above, the
  optimizer's non-tensor state, the scheduler's state and the trainer's bookkeeping;
* ``best.safetensors``: the weights of the epoch with the best validation metric
  (its epoch and metric in the file's metadata).

Every file is written to a temporary name and renamed into place (atomic on POSIX),
and ``last.json`` is written last: a run killed at any instant leaves either the
previous checkpoint or the new one, never a mixture. Files of older epochs are
removed once the new ``last.json`` is in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = ["write_json", "save", "load", "save_best", "load_best", "flatten_optimizer", "unflatten_optimizer"]

LAST = "last.json"
BEST = "best.safetensors"


def _replace_atomically(temporary: Path, path: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    _replace_atomically(temporary, path)


def _write_tensors(path: Path, tensors: Mapping[str, Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # safetensors wants contiguous CPU tensors that share no memory
    save_file({name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()},
              str(temporary), metadata=metadata)
    _replace_atomically(temporary, path)


def flatten_optimizer(state: Dict[str, Any]) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON-able rest."""
    tensors: Dict[str, Tensor] = {}
    scalars: Dict[str, Dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, Tensor], rest: Dict[str, Any]) -> Dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`."""
    state: Dict[int, Dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def save(directory: Path, epoch: int, model_state: Mapping[str, Tensor],
         trainer_tensors: Mapping[str, Tensor], record: Dict[str, Any]) -> None:
    """Write the checkpoint of ``epoch``; ``record`` is stored in ``last.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    model_file, trainer_file = f"model-{epoch:04d}.safetensors", f"trainer-{epoch:04d}.safetensors"
    _write_tensors(directory / model_file, model_state, {"epoch": str(epoch)})
    _write_tensors(directory / trainer_file, trainer_tensors, {"epoch": str(epoch)})
    write_json(directory / LAST, {**record, "epoch": epoch, "model": model_file, "trainer": trainer_file})
    for old in list(directory.glob("model-*.safetensors")) + list(directory.glob("trainer-*.safetensors")):
        if old.name not in (model_file, trainer_file):
            old.unlink()


def load(directory: Path) -> Optional[Tuple[Dict[str, Any], Dict[str, Tensor], Dict[str, Tensor]]]:
    """(record, model state, trainer tensors) of the last checkpoint, or None if there is none."""
    if not (directory / LAST).exists():
        return None
    record = json.loads((directory / LAST).read_text())
    return record, load_file(str(directory / record["model"])), load_file(str(directory / record["trainer"]))


def save_best(directory: Path, model_state: Mapping[str, Tensor], epoch: int, metric: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write_tensors(directory / BEST, model_state, {"epoch": str(epoch), "metric": repr(metric)})


def load_best(directory: Path) -> Dict[str, Tensor]:
    return load_file(str(directory / BEST))
