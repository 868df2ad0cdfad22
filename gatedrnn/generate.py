r"""Sampling text from a trained character-level language model (``gatedrnn generate``).

The prompt is fed through the model first (its state carries what it has read); then
each next character is drawn from

.. math:: p(c) \propto \exp(\text{logit}_c / \tau)

with temperature :math:`\tau` (0 takes the most likely character), fed back, and so
on. With a ``seed`` the draws come from a generator of their own and the text is the
same on every run on the same machine.

Example::

    >>> from gatedrnn.generate import generate
    >>> print(generate("runs/pysource-lstm-seed0", prompt="def ", length=60, seed=0))  # doctest: +SKIP
    def __init__(self, name, value):
            self._name = name
"""

from __future__ import annotations

import math
import os
from typing import Optional, Union

import torch
from torch import Tensor

from .models import LanguageModel
from .tasks import LanguageModelTask
from .train.runs import load_run

__all__ = ["sample", "generate"]

PathLike = Union[str, "os.PathLike[str]"]


def _next(logits: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """One id drawn from logits (V,), as a (1, 1) tensor."""
    if temperature == 0.0:
        return logits.argmax().view(1, 1)
    probabilities = torch.softmax(logits.double() / temperature, dim=-1)  # (V,)
    return torch.multinomial(probabilities, 1, generator=generator).view(1, 1)


def sample(model: LanguageModel, task: LanguageModelTask, prompt: str, length: int,
           temperature: float = 1.0, seed: Optional[int] = None) -> str:
    """``length`` characters that ``model`` writes after ``prompt`` (not included).

    Args:
        model: a trained :class:`~gatedrnn.models.LanguageModel` (put in eval mode here).
        task: its task (the alphabet: :meth:`~gatedrnn.tasks.LanguageModelTask.encode`).
        prompt: the text to start from; an empty prompt starts after a newline.
        length: characters to write, >= 0.
        temperature: >= 0; 1 samples the model's distribution, lower is more conservative,
            0 always takes the most likely character.
        seed: seeds the draws (the same text every time); None draws a fresh seed.

    Raises:
        ValueError: a negative ``length`` or a negative or non-finite ``temperature``.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    model.eval()
    ids = task.encode(prompt or "\n").unsqueeze(0)  # (1, P)
    written = []
    with torch.no_grad():
        logits, state = model(ids)  # (1, P, V)
        for _ in range(length):
            chosen = _next(logits[0, -1].float(), float(temperature), generator)  # (1, 1)
            written.append(int(chosen))
            logits, state = model(chosen, state)  # (1, 1, V)
    return task.decode(written)


def generate(run_dir: PathLike, prompt: str = "", length: int = 400, temperature: float = 1.0,
             seed: Optional[int] = None) -> str:
    """:func:`sample` from the best weights of the language-model run in ``run_dir``.

    Raises:
        FileNotFoundError: no such run directory, configuration or weights.
        ValueError: the run is not of a language-model task, or a bad argument.
    """
    run = load_run(run_dir)
    if not isinstance(run.task, LanguageModelTask):
        raise ValueError(f"generate samples from a language model; {run_dir} was trained on task "
                         f"{run.task.name!r} (train one with --task pysource)")
    return sample(run.model, run.task, prompt, length, temperature=temperature, seed=seed)
