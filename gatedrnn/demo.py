"""A one-minute demonstration: JANET with mean pooling and a Dense(1) head learns the
adding problem (Hochreiter & Schmidhuber 1997).

Each input sequence has two channels: random values in [0, 1), and a marker that is 1
at two random steps (one in each half) and 0 elsewhere. The target is the sum of the two
marked values. Predicting the mean (1.0) scores MSE ~ 1/6 ~ 0.167; a model that solves the
task gets close to 0.

Example::

    >>> from gatedrnn.demo import run_demo
    >>> losses = run_demo(steps=20, seq_len=20, log_every=0)
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .heads import MeanPool
from .init import chrono_
from .layers import JANET


def adding_problem(batch: int, seq_len: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """-> (inputs (B, T, 2), targets (B, 1))."""
    values = torch.rand(batch, seq_len, generator=generator)  # (B, T)
    half = seq_len // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, seq_len, (batch,), generator=generator)
    markers = torch.zeros(batch, seq_len)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    return inputs, (values * markers).sum(1, keepdim=True)  # (B, 1)


def run_demo(steps: int = 400, seq_len: int = 50, hidden: int = 32, batch: int = 64,
             lr: float = 1e-2, seed: int = 0, log_every: Optional[int] = 25) -> List[float]:
    """Train ``JANET -> MeanPool -> Linear(1)`` on the adding problem; return the losses.

    The JANET layer is chrono-initialised with t_max = the sequence length, as in the
    paper. Prints the loss every ``log_every`` steps (0 or None: silent).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    janet = JANET(2, hidden, batch_first=True)
    chrono_(janet, seq_len)
    model = nn.Sequential(janet, MeanPool(batch_first=True), nn.Linear(hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(1, steps + 1):
        inputs, targets = adding_problem(batch, seq_len, generator)
        loss = nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log_every and (step % log_every == 0 or step == 1):
            recent = losses[-log_every:]
            print(f"step {step:4d}  mse {sum(recent) / len(recent):.4f}"
                  f"  (predicting the mean: 0.1667)", flush=True)
    return losses
