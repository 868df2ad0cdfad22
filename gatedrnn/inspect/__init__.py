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

# -- pictures and the summary table (gatedrnn.inspect.plots needs matplotlib, imported
# on first use so that ``import gatedrnn`` works without it) --------------------------
from .summary import LayerRow, layer_rows, summary_table

_PLOTS = ("gate_heatmaps", "forget_histogram", "cell_vs_output", "gradient_flow_comparison",
          "learning_curves")
# the HTML report (gatedrnn.inspect.report) draws with plots, so it is imported lazily too
_REPORT = ("inspect_run", "inspect_fresh")
__all__ += ["summary_table", "layer_rows", "LayerRow", *_PLOTS, *_REPORT]


def __getattr__(name):
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    if name in _REPORT:
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
