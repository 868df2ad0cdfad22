"""Named training protocols: ``--protocol NAME`` sets a published experiment's settings.

A protocol's values rank between the options given and the task's defaults: every
option given (``--epochs 10``, ``--layers 1``, ...) still wins, and the resolved values
are in the run's ``config.json``.

``janet-paper``: the MNIST and permuted-MNIST experiments of van der Westhuizen &
Lasenby (2018), "The unreasonable effectiveness of the forget gate", as their code
(github.com/JosvanderWesthuizen/janet, commit fa2f0a5) runs them. For the
pixel-by-pixel (Fashion-)MNIST tasks only:

==================  =================================  ==========================================
setting             value                              the authors' code
==================  =================================  ==========================================
hidden, layers      128; 2 layers (128,128) plain,     ``main.py`` l. 26-29, ``Readme.md`` l. 42,
                    1 layer permuted                   45
batch_size          200                                ``main.py`` l. 30-32
optimizer, lr       Adam, 1e-3, constant (no schedule) ``main.py`` l. 40-46, ``model_file.py``
                                                       l. 136-138
l2                  1e-5: ``1e-5 * sum(w**2) / 2`` over ``main.py`` l. 60-62, ``model_file.py``
                    every non-bias parameter, added    l. 129-133 (``tf.nn.l2_loss``)
                    to the loss (weight_decay 0)
clip                5, by the global norm              ``main.py`` l. 37-39, ``model_file.py``
                                                       l. 148-154
dropout             0.1 on each layer's output at      ``main.py`` l. 33-36, ``model_file.py``
                    every step, which only the next    l. 30-33, 43-60 (the read-out takes the
                    layer reads; output_dropout 0      top layer's final *state*, never dropped)
head                the top layer's last h             ``model_file.py`` l. 43-60
epochs              100                                ``other_exp.py`` l. 14, ``Readme.md``
                                                       l. 42, 45
weight_init         Glorot-uniform weights, zero       ``aux_code/rnn_cells.py`` l. 35-38,
                    biases (TensorFlow's defaults)     ``aux_code/tf_ops.py`` l. 27-38
JANET (and LSTM     chrono: b_f = log U(1, T), T =     ``train_agent.py`` l. 46-47, 54,
with ``--chrono``)  784; LSTM b_i = -b_f               ``model_file.py`` l. 163-165,
                    (chrono_t_max = T + 1)             ``aux_code/rnn_cells.py`` l. 74-93
LSTM otherwise      b_f = 1, other biases 0            ``aux_code/rnn_cells.py`` l. 39-41, 96-104
best_by             the lowest validation loss         ``train_agent.py`` l. 170-174
                    (cross-entropy, without L2)
==================  =================================  ==========================================

``chrono_t_max`` is T + 1 because :func:`gatedrnn.init.chrono_` draws from
U(1, t_max - 1) (Tallec & Ollivier's formula) where the authors draw from
``random_uniform(minval=1, maxval=T)``. ``docs/janet-paper.md`` gives the whole account,
with what still differs (the data, TensorFlow's Adam epsilon).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..tasks import REGISTRY, Task
from ..tasks.pixels import PixelSequences

__all__ = ["PROTOCOLS", "protocol_defaults", "janet_paper", "pixel_task_names"]


def janet_paper(task: Task, cell: str, chrono: bool) -> Dict[str, Any]:
    """The ``janet-paper`` settings for ``task`` and ``cell`` (see the module's table).

    Raises:
        ValueError: ``task`` is not a pixel-by-pixel (Fashion-)MNIST task.
    """
    if not (isinstance(task, PixelSequences) and task.layout == "pixels"):
        raise ValueError(f"protocol janet-paper is the paper's pixel-by-pixel MNIST experiment: use it "
                         f"with --task {' | '.join(pixel_task_names())}, not {task.name}")
    values: Dict[str, Any] = {
        "hidden": 128, "layers": 1 if task.permuted else 2, "head": "last",
        "dropout": 0.1, "output_dropout": 0.0,
        "epochs": 100, "batch_size": 200, "optimizer": "adam", "lr": 1e-3, "schedule": "constant",
        "clip": 5.0, "weight_decay": 0.0, "l2": 1e-5, "weight_init": "glorot", "best_by": "loss",
    }
    if cell == "janet" or (cell == "lstm" and chrono):
        values["chrono_t_max"] = task.seq_len + 1  # chrono_ draws U(1, t_max - 1): U(1, T)
    elif cell == "lstm":
        values["forget_bias_init"] = 1.0
    return values


def pixel_task_names() -> List[str]:
    """The registered pixel-by-pixel (Fashion-)MNIST tasks: those ``janet-paper`` applies to."""
    return [name for name, cls in REGISTRY.items() if issubclass(cls, PixelSequences) and cls.layout == "pixels"]


#: name -> function (task, cell, chrono) -> the settings it fills
PROTOCOLS: Dict[str, Callable[[Task, str, bool], Dict[str, Any]]] = {"janet-paper": janet_paper}


def protocol_defaults(protocol: Optional[str], task: Task, cell: str, chrono: bool) -> Dict[str, Any]:
    """The settings that ``protocol`` fills for ``task`` and ``cell`` (``{}`` for None).

    Raises:
        ValueError: an unknown protocol, or one that does not apply to ``task``.
    """
    if protocol is None:
        return {}
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return PROTOCOLS[protocol](task, cell, chrono)
