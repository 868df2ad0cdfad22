"""See the cell at work: recorded gate values and states, and gradient flow over time.

:func:`record` returns a :class:`Trace` of every recurrent layer in a module (gate
values, hidden and cell states, each (T, B, ·)); :func:`gradient_flow` returns
||d loss / d h_t|| for every step t of the first recurrent layer's output.

Example::

    >>> import torch, gatedrnn as gr
    >>> janet = gr.init.chrono_(gr.JANET(1, 16), t_max=50)
    >>> x = torch.randn(50, 4, 1)
    >>> gr.inspect.record(janet, x)["l0"].gates["f"].shape
    torch.Size([50, 4, 16])
    >>> gr.inspect.gradient_flow(janet, x).shape
    torch.Size([50])
"""

from .gradflow import gradient_flow
from .record import LayerTrace, Trace, record

__all__ = ["record", "Trace", "LayerTrace", "gradient_flow"]
