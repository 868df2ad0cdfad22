r"""Bias initialisers for LSTM and JANET layers and cells: chrono and forget bias.

Both functions find every LSTM or JANET layer or cell inside a module (the module
itself or any submodule: :class:`gatedrnn.LSTM`, :class:`gatedrnn.JANET`,
:class:`gatedrnn.LSTMCell`, :class:`gatedrnn.JANETCell`, and ``torch.nn.LSTM`` /
``torch.nn.LSTMCell``, which share the parameter names and the gate order i, f, g, o),
and set the bias of every layer and direction in place. Weights are left untouched.

The effective bias of a gate is ``bias_ih + bias_hh``; both functions put the whole
value in ``bias_ih`` and set the same block of ``bias_hh`` to 0.

Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp
time?") draws the forget-gate bias so that the characteristic forgetting times of the
units, roughly :math:`e^{b_f}` steps, are spread uniformly over the range of time
dependencies expected in the data, up to ``t_max``:

.. math::
    b_f &\sim \log\big(\mathcal U(1,\ t_{max} - 1)\big) \quad\text{(one draw per unit)} \\
    b_i &= -b_f, \qquad b_g = b_o = 0 \qquad\text{(LSTM)} \\
    b_g &= 0 \qquad\text{(JANET)}

The JANET paper (van der Westhuizen & Lasenby 2018, "The unreasonable effectiveness of
the forget gate") always uses chrono initialisation, with ``t_max`` = the sequence
length; without it JANET is a different, and much worse, model. So a JANET is built
as::

    >>> import gatedrnn as gr
    >>> seq_len = 784                                  # e.g. pixel-by-pixel MNIST
    >>> janet = gr.init.chrono_(gr.JANET(1, 128, batch_first=True), t_max=seq_len)

:func:`forget_bias_` instead sets the forget-gate bias to one constant (1.0 is the
classic choice of Gers et al. 2000 and Jozefowicz et al. 2015).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .cells import JANETSpec, LSTMSpec
from .validation import check_float

__all__ = ["chrono_", "forget_bias_"]

#: A (bias_ih, bias_hh, gate names) triple: one layer and direction of one module.
BiasPair = Tuple[Tensor, Tensor, Tuple[str, ...]]


def _gates_of(module: nn.Module) -> Optional[Tuple[str, ...]]:
    """Gate names of an LSTM or JANET layer or cell, else None."""
    spec = getattr(module, "spec", None)
    if isinstance(spec, (LSTMSpec, JANETSpec)):
        return spec.gates
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        return LSTMSpec.gates  # torch.nn uses the same order i, f, g, o
    return None


def _describe(module: nn.Module) -> str:
    """``repr`` of a module on one line (containers abbreviated)."""
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


def _bias_pairs(function: str, module: nn.Module) -> List[BiasPair]:
    """Every (bias_ih, bias_hh, gates) of every LSTM/JANET layer or cell in ``module``.

    One entry per layer and direction (``bias_ih_l{k}[_reverse]`` with its
    ``bias_hh_l{k}[_reverse]``; a cell has the single pair ``bias_ih, bias_hh``).
    Everything is checked before anything is returned, so that an error leaves the
    module unchanged.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.
        ValueError: an LSTM/JANET has ``bias=False``, or there is none in ``module``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"{function} expects an nn.Module, got {type(module).__name__}")
    pairs: List[BiasPair] = []
    for name, sub in module.named_modules():
        gates = _gates_of(sub)
        if gates is None:
            continue
        where = f"{_describe(sub)}" + (f" (submodule {name!r})" if name else "")
        params: Dict[str, nn.Parameter] = dict(sub.named_parameters(recurse=False))
        suffixes = [n[len("bias_ih"):] for n in params if n.startswith("bias_ih")]
        if getattr(sub, "bias", True) is False or not suffixes:
            raise ValueError(
                f"{function} sets biases and needs bias=True, but {where} has bias=False"
            )
        for suffix in suffixes:
            bias_ih, bias_hh = params["bias_ih" + suffix], params.get("bias_hh" + suffix)
            if bias_hh is None or bias_ih.shape != bias_hh.shape or bias_ih.numel() % len(gates):
                raise ValueError(
                    f"{function}: {where} has bias_ih{suffix} of shape {tuple(bias_ih.shape)} "
                    f"without a matching bias_hh{suffix} of {len(gates)} gate blocks"
                )
            pairs.append((bias_ih, bias_hh, gates))
    if not pairs:
        raise ValueError(
            f"{function} applies to LSTM and JANET layers; found none in {_describe(module)}"
        )
    return pairs


def _blocks(bias: Tensor, gates: Tuple[str, ...]) -> Dict[str, Tensor]:
    """Views of ``bias`` (G*H,) per gate name, each (H,)."""
    return dict(zip(gates, bias.chunk(len(gates))))


def chrono_(module: nn.Module, t_max: float) -> nn.Module:
    r"""Chrono initialisation (Tallec & Ollivier 2018) of every LSTM/JANET in ``module``.

    For every layer and direction, independently per unit:

    .. math::
        b_f &\sim \log\big(\mathcal U(1,\ t_{max} - 1)\big) \\
        b_i &= -b_f, \quad b_g = b_o = 0 \qquad\text{(LSTM, gates i, f, g, o)} \\
        b_g &= 0 \qquad\text{(JANET, gates f, g)}

    The values go into ``bias_ih``; the same blocks of ``bias_hh`` are set to 0, so that
    ``bias_ih + bias_hh`` is the bias above. Weights are left untouched. Set
    ``t_max`` to the longest time dependency expected in the data, typically the
    sequence length.

    The JANET paper (van der Westhuizen & Lasenby 2018) always uses chrono
    initialisation with ``t_max`` = the sequence length; do the same.

    Args:
        module: an LSTM/JANET layer or cell, or any module containing some
            (``torch.nn.LSTM`` and ``torch.nn.LSTMCell`` included).
        t_max: a number >= 3, the longest expected time dependency in steps.

    Returns:
        ``module``, modified in place.

    Raises:
        TypeError: ``t_max`` is not a number, or ``module`` not an ``nn.Module``.
        ValueError: ``t_max`` < 3 or not finite, an LSTM/JANET in ``module`` has
            ``bias=False``, or ``module`` holds no LSTM/JANET (e.g. a GRU).

    Example::

        >>> import torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.JANET(1, 64, batch_first=True),
        ...                       gr.MeanPool(batch_first=True), nn.Linear(64, 1))
        >>> _ = gr.init.chrono_(model, t_max=100)   # finds the JANET inside
        >>> bool((model[0].bias_ih_l0[:64] <= math.log(99)).all())
        True
    """
    t_max = check_float("t_max", t_max)
    if not (math.isfinite(t_max) and t_max >= 3):
        raise ValueError(f"t_max must be a finite number >= 3, got {t_max}")
    pairs = _bias_pairs("chrono_", module)
    with torch.no_grad():
        for bias_ih, bias_hh, gates in pairs:
            ih = _blocks(bias_ih, gates)
            bias_ih.zero_()
            bias_hh.zero_()
            ih["f"].uniform_(1.0, t_max - 1.0).log_()
            if "i" in ih:  # LSTM: input gate tied to the forget gate
                ih["i"].copy_(-ih["f"])
    return module


def forget_bias_(module: nn.Module, value: float) -> nn.Module:
    r"""Set the forget-gate bias of every LSTM/JANET in ``module`` to ``value``.

    For every layer and direction the forget block of ``bias_ih`` becomes ``value`` and
    the forget block of ``bias_hh`` becomes 0 (so their sum is ``value``); the other
    gates' biases and all weights are left untouched.

    This is a *parameter initialisation*: the bias is then trained like any other and
    is saved in the ``state_dict``. It differs from the run-time ``forget_bias=``
    option of :class:`gatedrnn.LSTM` / :class:`gatedrnn.LSTMCell`, which follows
    TensorFlow's ``BasicLSTMCell``: a constant, not a parameter, added to the forget
    pre-activation at every step on top of the biases, so that TensorFlow checkpoints
    (trained with it) load unchanged. Use that option to reproduce a TensorFlow model;
    use this function to initialise a model of your own. Combining both adds them.

    Args:
        module: an LSTM/JANET layer or cell, or any module containing some.
        value: the forget-gate bias, a finite number (1.0 is the classic choice).

    Returns:
        ``module``, modified in place.

    Raises:
        TypeError: ``value`` is not a number. ValueError: ``value`` is not finite, an
        LSTM/JANET has ``bias=False``, or ``module`` holds none.

    Example::

        >>> import gatedrnn as gr
        >>> lstm = gr.init.forget_bias_(gr.LSTM(10, 20), 1.0)
        >>> (lstm.bias_ih_l0[20:40] + lstm.bias_hh_l0[20:40]).unique().tolist()
        [1.0]
    """
    value = check_float("value", value)
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {value}")
    pairs = _bias_pairs("forget_bias_", module)
    with torch.no_grad():
        for bias_ih, bias_hh, gates in pairs:
            _blocks(bias_ih, gates)["f"].fill_(value)
            _blocks(bias_hh, gates)["f"].zero_()
    return module
