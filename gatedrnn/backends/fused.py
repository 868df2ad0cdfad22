r"""The fused backend: one ``torch.autograd.Function`` per run, with a hand-written backward.

Pure PyTorch, device-agnostic (CPU and CUDA), every cell and option of
:mod:`gatedrnn.cells`, with ``lengths``. The design is that of haste and cuDNN:

Forward (no autograd graph)
    Per step one GEMM against ``W_hh`` (transposed once before the loop), written with
    ``out=`` straight into a preallocated per-step buffer, then the cell's pointwise
    math in place. Only what the backward needs is kept (below).

Backward
    A loop backwards in time. Per step one pointwise pass computes the gradient of the
    gate pre-activations into a (T, B, G*H) buffer (which is also the gradient of
    ``xw``) and one GEMM gives the gradient of the previous ``h``. The weight gradients
    (``W_hh``, ``b_hh``, ``W_hr``, peepholes) are computed after the loop, as one GEMM
    or one reduction over all T*B rows.

Two cells need a small extra piece: the GRU with the reset gate before the recurrent
product (``reset_after=False``) has a second GEMM on ``r * h`` (forward and backward),
and the LSTM with a projection has a GEMM with ``W_hr`` after the pointwise math
(forward and backward).

Memory kept from forward to backward, per time step and sequence (numbers of elements;
H hidden size, P = proj_size or H):

========================  ===========  ==============================================
cell                      per step     what
========================  ===========  ==============================================
RNN                       H            h_t (the output itself)
LSTM                      5H + P       i, f, g, o (activations), c_t, h_t (the output)
GRU reset_after=True      5H           r, z, n, W_hn h + b_hn, h_t (the output)
GRU reset_after=False     4H           r, z, n, h_t (the output)
JANET                     3H           s (forget pre-activation), tanh(c~), h_t (the output)
MGU                       3H           f, the candidate, h_t (the output)
IndRNN                    H            h_t (the output)
LayerNormLSTM             11H + 5      i, f, g, o, LN(W_hh h) (normalised), its 1/std per
                                       block, LN(c_t) (normalised), its 1/std, c_t, h_t
========================  ===========  ==============================================

Without ``lengths`` the saved ``h_t`` is the returned output tensor itself; with
``lengths`` the saved (frozen) state sequence is a buffer apart from the zero-padded
output, so + P per step while the caller holds the output. The LSTM's c (and, with
``lengths``, h) buffers hold T+1 states (the initial one too).

The backward allocates, for its own duration, the (T, B, G*H) gradient of ``xw`` (it is
returned), and GRU reset-after: (T, B, 3H) for the gradient of the recurrent
projection; LSTM projection: (T, B, P + H) for the projection's gradient and input;
GRU reset-before: (T, B, H) for ``r * h`` after the loop. Without autograd (inference)
the per-step buffers are allocated for one step and reused: besides the output, an
O(B * G*H) workspace.

Gradients of ``clamp`` (``cell_clip``, ``proj_clip``) are taken from the clipped value:
they pass where ``|value| < clip``. ``torch.clamp`` also passes them where the
unclipped value equals the bound exactly, a set of measure zero.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from . import reference
from ..cells import CellSpec, GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec, MGUSpec, RNNSpec, State

#: The recurrent weights, in the order the autograd Function takes them.
WEIGHT_NAMES = ("weight_hh", "bias_hh", "weight_hr", "weight_ci", "weight_cf", "weight_co",
                "layernorm_hh_weight", "layernorm_c_weight", "layernorm_c_bias")

Tensors = Tuple[Tensor, ...]


#: The states each step started from, (T, B, P), as pieces ``(steps, states)`` so that
#: h_0 and the outputs need not be copied into one tensor: ``[(slice(0, 1), h0[None]),
#: (slice(1, T), outputs[:-1])]``, or ``[(slice(0, T), hseq[:-1])]`` with lengths.
Pieces = List[Tuple[slice, Tensor]]


def _gemm_tn(a: Tensor, b: Pieces) -> Tensor:
    """``a^T b`` over all T*B rows: a (T, B, K), b (T, B, N) in pieces -> (K, N)."""
    out = None
    for steps, part in b:
        lhs, rhs = a[steps].reshape(-1, a.shape[-1]).t(), part.reshape(-1, part.shape[-1])
        out = torch.mm(lhs, rhs) if out is None else out.addmm_(lhs, rhs)
    return out


def _rows_sum(a: Tensor) -> Tensor:
    """Sum over all T*B rows: (T, B, K) -> (K,)."""
    return a.reshape(-1, a.shape[-1]).sum(0)


# The activations' derivatives from their outputs, one kernel each (autograd's own):
# grad * y * (1 - y) for y = sigmoid(a), grad * (1 - y^2) for y = tanh(a).
def _dsigmoid(grad: Tensor, y: Tensor, out: Optional[Tensor] = None) -> Tensor:
    if out is None:
        return torch.ops.aten.sigmoid_backward(grad, y)
    return torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)


def _dtanh(grad: Tensor, y: Tensor, out: Optional[Tensor] = None) -> Tensor:
    if out is None:
        return torch.ops.aten.tanh_backward(grad, y)
    return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)


def _dactivation(grad: Tensor, y: Tensor, relu: bool, out: Tensor) -> Tensor:
    """The gradient through y = relu(a) or tanh(a), from the output y, into ``out``:
    relu' = [y > 0], tanh' = 1 - y^2 (as autograd computes them)."""
    if relu:
        return torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=out)
    return _dtanh(grad, y, out=out)


def _one_minus_times(grad: Tensor, z: Tensor) -> Tensor:
    """``grad * (1 - z)`` as one kernel: ``grad - grad * z``."""
    return torch.addcmul(grad, grad, z, value=-1)


# -- per-cell pieces --------------------------------------------------------------------


class _Kernel:
    """The per-cell pieces the driver calls; one instance per forward or backward.

    ``saved_widths``: widths of the per-step buffers kept for backward (besides the
    states). ``grad_widths``: widths of the per-step buffers the backward fills; the
    first is always the gradient of ``xw`` (G*H).

    ``step(xw_t, prev, new, saved)`` writes the new state into ``new`` and the per-step
    saved values into ``saved`` (tuples of (B, ·) views). ``backward_step(dnew, prev,
    new, saved, grads)`` gets the gradient of the new state, fills ``grads`` (views of
    the grad buffers at this step) and returns the gradient of the previous state.
    """

    saved_widths: Tuple[int, ...] = ()
    grad_widths: Tuple[int, ...] = ()

    def __init__(self, spec: CellSpec, w: Mapping[str, Optional[Tensor]]) -> None:
        self.spec = spec
        self.W = w["weight_hh"]  # (G*H, P)
        self.b = w["bias_hh"]  # (G*H,) or None
        self.H = self.W.shape[0] // spec.num_gates
        self._WT: Optional[Tensor] = None

    @property
    def WT(self) -> Tensor:
        """``W_hh^T`` (P, G*H), made contiguous once per run (forward only)."""
        if self._WT is None:
            self._WT = self.W.t().contiguous()
        return self._WT

    #: True: the first saved buffer holds the gate pre-activations, and the driver may
    #: fill it with ``xw + b_hh`` for all steps at once (see :meth:`prefill`).
    prefills = False

    def prefill(self, xw: Tensor, out: Tensor) -> None:
        """``out = xw + b_hh`` over all steps, before the loop."""
        if self.b is None:
            out.copy_(xw)
        else:
            torch.add(xw, self.b, out=out)

    def _prefilled(self, xw_t: Tensor, out: Tensor) -> Tensor:
        """``out`` holding ``xw_t + b_hh``: filled here unless the driver did (``xw_t is out``)."""
        if xw_t is not out:
            self.prefill(xw_t, out)
        return out

    def _project(self, xw_t: Tensor, h: Tensor, out: Tensor) -> Tensor:
        """``out = xw_t + b_hh + h W_hh^T``: the step's one GEMM, (B, G*H).

        ``xw_t is out``: the driver has prefilled it with ``xw_t + b_hh``. The bias is
        added before the product (cells.py: after it): same equation, other rounding.
        """
        if xw_t is out:
            return out.addmm_(h, self.WT)
        torch.addmm(xw_t, h, self.WT, out=out)
        return out if self.b is None else out.add_(self.b)

    def recurrent_grads(self, grads: Tensors) -> Tensor:
        """The (T, B, G*H) gradient of ``h W_hh^T + b_hh`` (default: that of xw)."""
        return grads[0]

    def weight_grads(self, needs: Mapping[str, bool], grads: Tensors, h_prev: Pieces,
                     cs: Optional[Tensor], saved: Tensors) -> Dict[str, Tensor]:
        """The gradients of the recurrent weights, from all T*B rows at once.

        h_prev: the state each step started from; cs: the LSTM's (T+1, B, H).
        """
        drec = self.recurrent_grads(grads)
        out = {}
        if needs["weight_hh"]:
            out["weight_hh"] = _gemm_tn(drec, h_prev)
        if needs["bias_hh"]:
            out["bias_hh"] = _rows_sum(drec)
        return out


class _RNN(_Kernel):
    """``h' = act(xw + W_hh h + b_hh)``; keeps nothing but h_t (see :func:`~gatedrnn.cells.rnn_step`)."""

    def __init__(self, spec: RNNSpec, w) -> None:
        super().__init__(spec, w)
        self.relu = spec.nonlinearity == "relu"
        self.grad_widths = (self.H,)

    def step(self, xw_t, prev, new, saved) -> None:
        h = self._project(xw_t, prev[0], new[0])
        h.relu_() if self.relu else h.tanh_()

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        (dh,), (h,), (da,) = dnew, new, grads
        _dactivation(dh, h, self.relu, out=da)
        return (torch.mm(da, self.W),)


class _LSTM(_Kernel):
    """LSTM with forget_bias, peepholes, cell_clip, projection and proj_clip.

    Saves the activations i, f, g, o (4H) per step, and the states c_t, h_t.
    """

    def __init__(self, spec: LSTMSpec, w) -> None:
        super().__init__(spec, w)
        H = self.H
        self.prefills = True
        self.W_hr = w["weight_hr"]  # (P, H) or None
        self.p_i, self.p_f, self.p_o = w["weight_ci"], w["weight_cf"], w["weight_co"]
        self.saved_widths = (4 * H,)
        # with the projection: d(h before clip) (P) and m = o * tanh(c) (H), for dW_hr
        self.grad_widths = (4 * H,) + (() if self.W_hr is None else (self.W_hr.shape[0], H))

    def step(self, xw_t, prev, new, saved) -> None:
        spec, H, (h, c), (h_new, c_new), (a,) = self.spec, self.H, prev, new, saved
        self._project(xw_t, h, a)
        i, f, g, o = a.chunk(4, 1)  # views of the saved buffer: (B, H) each
        if self.p_i is not None:  # peepholes from c_{t-1} (cells.py: ci and cf together)
            i.addcmul_(self.p_i, c)
            f.addcmul_(self.p_f, c)
        if spec.forget_bias != 0.0:
            f.add_(spec.forget_bias)
        a[:, :2 * H].sigmoid_()  # i, f
        g.tanh_()
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        if spec.cell_clip is not None:
            c_new.clamp_(-spec.cell_clip, spec.cell_clip)
        if self.p_o is not None:  # peephole from c_t
            o.addcmul_(self.p_o, c_new)
        o.sigmoid_()
        if self.W_hr is None:
            torch.mul(o, torch.tanh(c_new), out=h_new)
        else:
            torch.mm(o * torch.tanh(c_new), self.W_hr.t(), out=h_new)  # the projection's GEMM
            if spec.proj_clip is not None:
                h_new.clamp_(-spec.proj_clip, spec.proj_clip)

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        spec, (dh, dc), (_, c), (h_new, c_new), (a,) = self.spec, dnew, prev, new, saved
        i, f, g, o = a.chunk(4, 1)
        dgates = grads[0]
        d_i, d_f, d_g, d_o = dgates.chunk(4, 1)
        tanh_c = torch.tanh(c_new)
        if self.W_hr is None:
            dm = dh  # m = o * tanh(c') is h'
        else:
            dproj, m = grads[1], grads[2]
            if spec.proj_clip is not None:
                torch.mul(dh, h_new.abs() < spec.proj_clip, out=dproj)
            else:
                dproj.copy_(dh)
            torch.mul(o, tanh_c, out=m)  # recomputed here, kept for dW_hr after the loop
            dm = torch.mm(dproj, self.W_hr)  # (B, H)
        _dsigmoid(dm * tanh_c, o, out=d_o)
        dc_new = _dtanh(dm * o, tanh_c).add_(dc)  # gradient of the (clipped) c_t
        if self.p_o is not None:
            dc_new.addcmul_(d_o, self.p_o)
        if spec.cell_clip is not None:
            dc_new.mul_(c_new.abs() < spec.cell_clip)
        _dsigmoid(dc_new * g, i, out=d_i)
        _dsigmoid(dc_new * c, f, out=d_f)
        _dtanh(dc_new * i, g, out=d_g)
        dc_prev = dc_new * f
        if self.p_i is not None:
            dc_prev.addcmul_(d_i, self.p_i).addcmul_(d_f, self.p_f)
        return torch.mm(dgates, self.W), dc_prev

    def weight_grads(self, needs, grads, h_prev, cs, saved) -> Dict[str, Tensor]:
        out = super().weight_grads(needs, grads, h_prev, cs, saved)
        H, dgates = self.H, grads[0]
        if needs["weight_hr"]:
            out["weight_hr"] = _gemm_tn(grads[1], [(slice(None), grads[2])])  # (P, H)
        for name, block, c in (("weight_ci", 0, cs[:-1]), ("weight_cf", 1, cs[:-1]),
                               ("weight_co", 3, cs[1:])):
            if needs[name]:
                out[name] = (dgates[..., block * H:(block + 1) * H] * c).sum((0, 1))
        return out


class _GRUResetAfter(_Kernel):
    """GRU, ``n = tanh(x_n + r * (W_hn h + b_hn))`` (PyTorch / cuDNN).

    Saves r, z, n (3H) and ``W_hn h + b_hn`` (H) per step, and h_t.
    """

    def __init__(self, spec: GRUSpec, w) -> None:
        super().__init__(spec, w)
        H = self.H
        self.saved_widths = (3 * H, H)
        # d xw and d(h W_hh^T + b_hh): they differ in the n block by the factor r
        self.grad_widths = (3 * H, 3 * H)
        self._rec: Optional[Tensor] = None

    def step(self, xw_t, prev, new, saved) -> None:
        H, (h,), (gates, hn) = self.H, prev, saved
        if self._rec is None:  # (B, 3H) scratch: h W_hh^T + b_hh, reused every step
            self._rec = h.new_empty(h.shape[0], 3 * H)
        if self.b is None:
            rec = torch.mm(h, self.WT, out=self._rec)
        else:
            rec = torch.addmm(self.b, h, self.WT, out=self._rec)
        torch.add(xw_t[:, :2 * H], rec[:, :2 * H], out=gates[:, :2 * H]).sigmoid_()  # r, z
        hn.copy_(rec[:, 2 * H:])
        r, z, n = gates.chunk(3, 1)
        torch.addcmul(xw_t[:, 2 * H:], r, hn, out=n).tanh_()
        torch.sub(h, n, out=new[0]).mul_(z).add_(n)  # h' = n + z (h - n), as cells.py

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        H, (dh,), (h,), (gates, hn), (dxw, drec) = self.H, dnew, prev, saved, grads
        r, z, n = gates.chunk(3, 1)
        d_r, d_z, d_n = dxw.chunk(3, 1)
        # h' = n + z (h - n): dn = dh (1 - z), dz = dh (h - n), dh += dh z
        _dtanh(_one_minus_times(dh, z), n, out=d_n)
        _dsigmoid(dh * (h - n), z, out=d_z)
        _dsigmoid(d_n * hn, r, out=d_r)
        drec[:, :2 * H].copy_(dxw[:, :2 * H])
        torch.mul(d_n, r, out=drec[:, 2 * H:])
        return (torch.addmm(dh * z, drec, self.W),)

    def recurrent_grads(self, grads: Tensors) -> Tensor:
        return grads[1]


class _GatedCandidate(_Kernel):
    """A cell whose candidate (the last H gate rows) reads ``q = g * h``, g the first gate
    block (the GRU with the reset gate first: r; the MGU: f): a second GEMM per step."""

    def weight_grads(self, needs, grads, h_prev, cs, saved) -> Dict[str, Tensor]:
        """Rows of W_hh but the candidate's against h, the candidate's against q."""
        H, (dgates,), (gates,) = self.H, grads, saved
        split = dgates.shape[-1] - H
        out = {}
        if needs["weight_hh"]:
            q = torch.empty_like(gates[..., :H])  # g * h for all steps, (T, B, H)
            for steps, h in h_prev:
                torch.mul(gates[steps, :, :H], h, out=q[steps])
            out["weight_hh"] = torch.cat([_gemm_tn(dgates[..., :split], h_prev),
                                          _gemm_tn(dgates[..., split:], [(slice(None), q)])])
        if needs["bias_hh"]:
            out["bias_hh"] = _rows_sum(dgates)
        return out


class _GRUResetBefore(_GatedCandidate):
    """GRU, ``n = tanh(x_n + W_hn (r * h) + b_hn)`` (TF1, Keras reset_after=False, ONNX).

    A second GEMM per step, on ``r * h``. Saves r, z, n (3H) per step, and h_t.
    """

    def __init__(self, spec: GRUSpec, w) -> None:
        super().__init__(spec, w)
        H = self.H
        self.W_rz, self.W_n = self.W[:2 * H], self.W[2 * H:]  # (2H, H), (H, H)
        self.prefills = True  # b_hn adds outside the product: all of b_hh goes in first
        self.saved_widths = (3 * H,)
        self.grad_widths = (3 * H,)

    def step(self, xw_t, prev, new, saved) -> None:
        H, (h,), gates = self.H, prev, self._prefilled(xw_t, saved[0])
        gates[:, :2 * H].addmm_(h, self.WT[:, :2 * H]).sigmoid_()  # r, z
        r, z, n = gates.chunk(3, 1)
        n.addmm_(r * h, self.WT[:, 2 * H:]).tanh_()  # the second GEMM, on r * h
        torch.sub(h, n, out=new[0]).mul_(z).add_(n)  # h' = n + z (h - n), as cells.py

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        H, (dh,), (h,), (gates,), (dgates,) = self.H, dnew, prev, saved, grads
        r, z, n = gates.chunk(3, 1)
        d_r, d_z, d_n = dgates.chunk(3, 1)
        # h' = n + z (h - n): dn = dh (1 - z), dz = dh (h - n), dh += dh z
        _dtanh(_one_minus_times(dh, z), n, out=d_n)
        _dsigmoid(dh * (h - n), z, out=d_z)
        dq = torch.mm(d_n, self.W_n)  # gradient of q = r * h: the second GEMM
        _dsigmoid(dq * h, r, out=d_r)
        return (torch.addmm(dh * z + dq * r, dgates[:, :2 * H], self.W_rz),)



class _JANET(_Kernel):
    """JANET, ``c' = sigma(s) c + (1 - sigma(s - beta)) tanh(c~)``.

    Saves the forget pre-activation s and tanh(c~) (2H) per step, and h_t = c_t; the
    backward recomputes sigma(s) and sigma(s - beta) from s.
    """

    def __init__(self, spec: JANETSpec, w) -> None:
        super().__init__(spec, w)
        self.prefills = True
        self.saved_widths = (2 * self.H,)
        self.grad_widths = (2 * self.H,)

    def _gates(self, s: Tensor) -> Tuple[Tensor, Tensor]:
        f = torch.sigmoid(s)
        return f, (f if self.spec.beta == 0.0 else torch.sigmoid(s - self.spec.beta))

    def step(self, xw_t, prev, new, saved) -> None:
        (c,), (a,) = prev, saved
        s, g = self._project(xw_t, c, a).chunk(2, 1)
        g.tanh_()
        f, u = self._gates(s)
        torch.mul(f, c, out=new[0]).addcmul_(1.0 - u, g)  # as cells.py

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        (dc,), (c,), (a,), (dgates,) = dnew, prev, saved, grads
        s, g = a.chunk(2, 1)
        d_s, d_g = dgates.chunk(2, 1)
        f, u = self._gates(s)
        # ds = dc c f (1 - f) - dc g u (1 - u);  dg~ = dc (1 - u) (1 - g^2)
        _dsigmoid(dc * c, f, out=d_s).sub_(_dsigmoid(dc * g, u))
        _dtanh(_one_minus_times(dc, u), g, out=d_g)
        return (torch.addmm(dc * f, dgates, self.W),)


class _MGU(_GatedCandidate):
    """Minimal gated unit, ``h' = h + f (tanh(x_h + W_hh (f h) + b_hh) - h)``.

    A second GEMM per step, on ``f * h`` (as the GRU with the reset gate first). Saves
    f and the candidate (2H) per step, and h_t.
    """

    def __init__(self, spec: MGUSpec, w) -> None:
        super().__init__(spec, w)
        H = self.H
        self.W_f, self.W_h = self.W[:H], self.W[H:]  # (H, H) each
        self.prefills = True
        self.saved_widths = (2 * H,)
        self.grad_widths = (2 * H,)

    def step(self, xw_t, prev, new, saved) -> None:
        H, (h,), gates = self.H, prev, self._prefilled(xw_t, saved[0])
        f, n = gates.chunk(2, 1)
        f.addmm_(h, self.WT[:, :H]).sigmoid_()
        n.addmm_(f * h, self.WT[:, H:]).tanh_()  # the second GEMM, on f * h
        torch.sub(n, h, out=new[0]).mul_(f).add_(h)  # h' = h + f (n - h), as cells.py

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        (dh,), (h,), (gates,), (dgates,) = dnew, prev, saved, grads
        f, n = gates.chunk(2, 1)
        d_f, d_n = dgates.chunk(2, 1)
        _dtanh(dh * f, n, out=d_n)
        dq = torch.mm(d_n, self.W_h)  # gradient of q = f * h: the second GEMM
        _dsigmoid(torch.addcmul(dq * h, dh, n - h), f, out=d_f)
        return (torch.addmm(_one_minus_times(dh, f).addcmul_(dq, f), d_f, self.W_f),)



class _IndRNN(_Kernel):
    """IndRNN, ``h' = act(xw + u h + b_hh)`` with u a vector: no GEMM at all; keeps
    nothing but h_t (see :func:`~gatedrnn.cells.indrnn_step`)."""

    def __init__(self, spec: IndRNNSpec, w) -> None:
        super().__init__(spec, w)
        self.relu = spec.nonlinearity == "relu"
        limit = spec.recurrent_max
        self.u = self.W if limit is None else self.W.clamp(-limit, limit)  # (H,)
        self.grad_widths = (self.H,)

    def step(self, xw_t, prev, new, saved) -> None:
        h = torch.addcmul(xw_t, self.u, prev[0], out=new[0])
        if self.b is not None:
            h.add_(self.b)
        h.relu_() if self.relu else h.tanh_()

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        (dh,), (h,), (da,) = dnew, new, grads
        _dactivation(dh, h, self.relu, out=da)
        return (da * self.u,)

    def weight_grads(self, needs, grads, h_prev, cs, saved) -> Dict[str, Tensor]:
        (da,), out = grads, {}
        if needs["weight_hh"]:
            du = sum((da[steps] * h).sum((0, 1)) for steps, h in h_prev)  # (H,)
            if self.spec.recurrent_max is not None:  # clamp passes the gradient inside the range only
                du = du * (self.W.abs() <= self.spec.recurrent_max)
            out["weight_hh"] = du
        if needs["bias_hh"]:
            out["bias_hh"] = _rows_sum(da)
        return out


def _block_norm(v: Tensor, blocks: int, eps: float, out: Tensor, rstd: Tensor) -> None:
    """Normalise each of ``blocks`` blocks of v (B, blocks*K) into ``out``, keeping
    1/std (B, blocks) in ``rstd``: the statistics of LN without its gain and bias."""
    vb = v.view(v.shape[0], blocks, -1)
    centred = vb - vb.mean(-1, keepdim=True)  # (B, blocks, K)
    torch.rsqrt(centred.square().mean(-1).add_(eps), out=rstd)
    torch.mul(centred, rstd.unsqueeze(-1), out=out.view_as(vb))


def _block_norm_backward(dn: Tensor, n: Tensor, rstd: Tensor, blocks: int) -> Tensor:
    """Gradient of v from that of n = (v - mean) * rstd, per block:
    rstd (dn - mean(dn) - n mean(dn n))."""
    B = dn.shape[0]
    dnb, nb = dn.view(B, blocks, -1), n.view(B, blocks, -1)
    dv = dnb - dnb.mean(-1, keepdim=True) - nb * (dnb * nb).mean(-1, keepdim=True)
    return (dv * rstd.unsqueeze(-1)).view(B, -1)


class _LayerNormLSTM(_Kernel):
    """Layer-normalised LSTM (``xw`` is the already normalised input term).

    Saves per step the gate activations i, f, g, o (4H), the normalised recurrent term
    (4H) and its 1/std per block (4), the normalised cell state (H) and its 1/std (1).
    """

    def __init__(self, spec: LayerNormLSTMSpec, w) -> None:
        super().__init__(spec, w)
        H = self.H
        self.g_hh = w["layernorm_hh_weight"]  # (4H,)
        self.g_c, self.b_c = w["layernorm_c_weight"], w["layernorm_c_bias"]  # (H,)
        self.saved_widths = (4 * H, 4 * H, 4, H, 1)
        # d xw (= d of the gate pre-activations), d of W_hh h, d of the LN(c) output
        self.grad_widths = (4 * H, 4 * H, H)

    def step(self, xw_t, prev, new, saved) -> None:
        spec, (h, c), (h_new, c_new), (act, n, rstd, m, rstd_c) = self.spec, prev, new, saved
        _block_norm(torch.mm(h, self.WT), 4, spec.eps, n, rstd)  # LN(W_hh h) before its gain
        torch.addcmul(xw_t, n, self.g_hh, out=act)
        if self.b is not None:
            act.add_(self.b)
        i, f, g, o = act.chunk(4, 1)
        if spec.forget_bias != 0.0:
            f.add_(spec.forget_bias)
        act[:, :2 * self.H].sigmoid_()
        g.tanh_()
        o.sigmoid_()
        torch.mul(f, c, out=c_new).addcmul_(i, g)  # c' = f c + i g
        _block_norm(c_new, 1, spec.eps, m, rstd_c)
        torch.mul(o, torch.addcmul(self.b_c, m, self.g_c).tanh_(), out=h_new)

    def backward_step(self, dnew, prev, new, saved, grads) -> Tensors:
        (dh, dc), (_, c), (act, n, rstd, m, rstd_c), (da, dr, dy) = dnew, prev, saved, grads
        i, f, g, o = act.chunk(4, 1)
        d_i, d_f, d_g, d_o = da.chunk(4, 1)
        t = torch.addcmul(self.b_c, m, self.g_c).tanh_()  # tanh(LN(c')), recomputed
        _dsigmoid(dh * t, o, out=d_o)
        _dtanh(dh * o, t, out=dy)
        dc_new = _block_norm_backward(dy * self.g_c, m, rstd_c, 1).add_(dc)
        _dsigmoid(dc_new * g, i, out=d_i)
        _dsigmoid(dc_new * c, f, out=d_f)
        _dtanh(dc_new * i, g, out=d_g)
        dr.copy_(_block_norm_backward(da * self.g_hh, n, rstd, 4))
        return torch.mm(dr, self.W), dc_new * f

    def recurrent_grads(self, grads: Tensors) -> Tensor:
        return grads[1]

    def weight_grads(self, needs, grads, h_prev, cs, saved) -> Dict[str, Tensor]:
        out = {}
        if needs["weight_hh"]:
            out["weight_hh"] = _gemm_tn(grads[1], h_prev)
        if needs["bias_hh"]:
            out["bias_hh"] = _rows_sum(grads[0])
        (da, _, dy), (_, n, _, m, _) = grads, saved
        if needs["layernorm_hh_weight"]:
            out["layernorm_hh_weight"] = (da * n).sum((0, 1))
        if needs["layernorm_c_weight"]:
            out["layernorm_c_weight"] = (dy * m).sum((0, 1))
        if needs["layernorm_c_bias"]:
            out["layernorm_c_bias"] = _rows_sum(dy)
        return out


#: Each cell's kernel, by :attr:`CellSpec.name`.
_KERNELS = {
    "rnn": _RNN, "lstm": _LSTM, "janet": _JANET, "mgu": _MGU, "indrnn": _IndRNN,
    "layernorm-lstm": _LayerNormLSTM,
    "gru": lambda spec, w: (_GRUResetAfter if spec.reset_after else _GRUResetBefore)(spec, w),
}


def _kernel(spec: CellSpec, w: Mapping[str, Optional[Tensor]]) -> _Kernel:
    return _KERNELS[spec.name](spec, w)


# -- the generic driver -----------------------------------------------------------------


def _per_step(buffer: Tensor, steps: int) -> List[Tensor]:
    """Views of ``buffer`` for each of ``steps`` steps; a short buffer is reused cyclically."""
    views = buffer.unbind(0)
    return list(views) if len(views) == steps else [views[t % len(views)] for t in range(steps)]


def _state_views(h0: Tensor, hseq: Tensor, cs: Optional[Tensor], steps: int,
                 masked: bool) -> List[List[Tensor]]:
    """Per state element, the T+1 states: without lengths h_t is the output hseq[t-1]."""
    h_views = _per_step(hseq, steps + 1) if masked else [h0] + list(hseq.unbind(0))
    return [h_views] + ([] if cs is None else [_per_step(cs, steps + 1)])


def _valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool: True at the valid steps of each sequence."""
    return (torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths).unsqueeze(-1)


def _forward(kernel: _Kernel, xw: Tensor, state0: State, lengths: Optional[Tensor],
             save: bool) -> Tuple[Tensor, State, Tensor, Optional[Tensor], Tensors]:
    """The forward loop -> (outputs, final state, hseq, cs, saved buffers).

    With ``save=False`` the per-step buffers hold one step (or two states) and are reused.
    """
    steps, batch = xw.shape[:2]
    h0 = state0[0]
    n = steps if save else 1
    saved = tuple(xw.new_empty(n, batch, width) for width in kernel.saved_widths)
    saved_views = [_per_step(buf, steps) for buf in saved]
    masked = lengths is not None
    if masked:
        outputs = xw.new_empty(steps, batch, h0.shape[-1])
        hseq = xw.new_empty(steps + 1 if save else 2, batch, h0.shape[-1])
        hseq[0].copy_(h0)
    else:
        outputs = hseq = xw.new_empty(steps, batch, h0.shape[-1])
    cs = None
    if len(state0) > 1:
        cs = xw.new_empty(steps + 1 if save else 2, batch, state0[1].shape[-1])
        cs[0].copy_(state0[1])
    seqs = _state_views(h0, hseq, cs, steps, masked)

    if masked:
        mask = _valid_mask(lengths, steps)
        valid, invalid = mask.unbind(0), (~mask).unbind(0)
        scratch = tuple(torch.empty_like(seq[0]) for seq in seqs)
    out_views = outputs.unbind(0)
    xw_views = xw.unbind(0)
    if save and kernel.prefills:  # xw + b_hh into the gates buffer, for all steps at once
        kernel.prefill(xw, saved[0])
        xw_views = saved_views[0]
    for t, xw_t in enumerate(xw_views):
        prev = tuple(seq[t] for seq in seqs)
        new = tuple(seq[t + 1] for seq in seqs)
        saved_t = tuple(views[t] for views in saved_views)
        if not masked:
            kernel.step(xw_t, prev, new, saved_t)
            continue
        kernel.step(xw_t, prev, scratch, saved_t)
        for s, p, nw in zip(scratch, prev, new):  # past its length a sequence is frozen
            torch.where(valid[t], s, p, out=nw)
        out_views[t].copy_(scratch[0]).masked_fill_(invalid[t], 0)
    final = tuple(seq[steps].clone() for seq in seqs)  # not views of a saved buffer
    return outputs, final, hseq, cs, saved


class _FusedRecurrence(torch.autograd.Function):
    """One run of the recurrence; inputs: spec, lengths, xw, h0, c0, then WEIGHT_NAMES.

    The hand-written backward is not itself differentiable: when autograd asks for a
    differentiable gradient (``create_graph=True``: double backward, gradient penalties),
    the gradients are recomputed through the reference loop
    (:func:`~gatedrnn.backends.reference.recompute_grads`), exact to every order.
    """

    @staticmethod
    def forward(ctx, spec, lengths, xw, h0, c0, *weights):
        w = dict(zip(WEIGHT_NAMES, weights))
        state0 = (h0,) if c0 is None else (h0, c0)
        outputs, final, hseq, cs, saved = _forward(_kernel(spec, w), xw, state0, lengths, True)
        ctx.spec = spec
        ctx.num_saved = len(saved)
        ctx.save_for_backward(lengths, xw, h0, c0, hseq, cs, *saved, *weights)
        return (outputs,) + final

    @staticmethod
    def backward(ctx, doutputs, *dfinal):
        lengths, xw, h0, c0, hseq, cs, *rest = ctx.saved_tensors
        saved, weights = tuple(rest[:ctx.num_saved]), rest[ctx.num_saved:]
        w = dict(zip(WEIGHT_NAMES, weights))
        if reference.backward_must_recompute(doutputs, *dfinal):  # create_graph=True, or vmap over the backward
            state0 = (h0,) if c0 is None else (h0, c0)
            present = {name: value for name, value in w.items() if value is not None}
            grad_xw, grad_state, grads = reference.recompute_grads(
                ctx.spec, xw, state0, present, lengths, doutputs, dfinal)
            return (None, None, grad_xw, *grad_state, *([None] if c0 is None else []),
                    *(grads.get(name) for name in WEIGHT_NAMES))
        return _backward(ctx, doutputs, dfinal, lengths, h0, hseq, cs, saved, w)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(
            "gatedrnn's fused backend has no forward-mode AD (torch.func.jvp, torch.autograd.forward_ad); "
            "run the layer with backend='reference' for forward-mode derivatives")


def _backward(ctx, doutputs, dfinal, lengths, h0, hseq, cs, saved, w):
    """The hand-written backward of :class:`_FusedRecurrence` (its inputs' gradients)."""
    kernel = _kernel(ctx.spec, w)
    needs = dict(zip(WEIGHT_NAMES, ctx.needs_input_grad[5:]))
    steps = doutputs.shape[0]
    masked = lengths is not None
    seqs = _state_views(h0, hseq, cs, steps, masked)

    grads = tuple(doutputs.new_empty(steps, doutputs.shape[1], width)
                  for width in kernel.grad_widths)
    grad_views = [buf.unbind(0) for buf in grads]
    saved_views = [buf.unbind(0) for buf in saved]
    dout_views = doutputs.unbind(0)
    if masked:
        mask = _valid_mask(lengths, steps)
        valid, invalid = mask.unbind(0), (~mask).unbind(0)
    carry = dfinal  # gradient of the state after step t
    for t in range(steps - 1, -1, -1):
        dnew = (carry[0] + dout_views[t],) + tuple(carry[1:])
        grads_t = tuple(views[t] for views in grad_views)
        dprev = kernel.backward_step(
            dnew, tuple(seq[t] for seq in seqs), tuple(seq[t + 1] for seq in seqs),
            tuple(views[t] for views in saved_views), grads_t)
        if masked:  # a frozen step: no gate gradients, the state's passes through
            for g in grads_t:
                g.masked_fill_(invalid[t], 0)
            dprev = tuple(torch.where(valid[t], d, c) for d, c in zip(dprev, carry))
        carry = dprev

    weight_grads: Dict[str, Tensor] = {}
    if any(needs[name] and w[name] is not None for name in WEIGHT_NAMES):
        if masked:
            h_prev = [(slice(None), hseq[:-1])]
        else:  # h0, then the outputs but the last
            h_prev = [(slice(0, 1), h0.unsqueeze(0)), (slice(1, None), hseq[:-1])][:steps]
        weight_grads = kernel.weight_grads(needs, grads, h_prev, cs, saved)
    need_xw, need_h0, need_c0 = ctx.needs_input_grad[2:5]
    return (None, None, grads[0] if need_xw else None, carry[0] if need_h0 else None,
            carry[1] if need_c0 else None,
            *(weight_grads.get(name) for name in WEIGHT_NAMES))


def is_available() -> bool:
    """Pure PyTorch: always."""
    return True


def supports(spec: CellSpec, xw: Tensor) -> bool:
    """The cells with a kernel here (every cell; not zoneout) on floating-point tensors of
    any device."""
    return spec.name in _KERNELS and xw.is_floating_point()


def run(spec: CellSpec, xw: Tensor, state: State, weights: Mapping[str, Tensor],
        lengths: Optional[Tensor] = None) -> Tuple[Tensor, State]:
    """Run the recurrence forward in time: arguments, shapes and result as
    :func:`gatedrnn.backends.reference.run`."""
    unknown = set(weights) - set(WEIGHT_NAMES)
    if unknown:
        raise ValueError(f"unknown recurrent weights {sorted(unknown)}; expected some of {WEIGHT_NAMES}")
    w = [weights.get(name) for name in WEIGHT_NAMES]
    # under autocast xw may be in a lower precision than the parameters: run in xw's dtype
    w = [None if x is None else x.to(xw.dtype) for x in w]
    state = tuple(s.to(xw.dtype) for s in state)
    if lengths is not None:
        lengths = lengths.to(device=xw.device, dtype=torch.int64)
    h0, c0 = state[0], (state[1] if len(state) > 1 else None)
    tensors = [xw, *state, *(x for x in w if x is not None)]
    if torch.is_grad_enabled() and any(x.requires_grad for x in tensors):
        outputs, *final = _FusedRecurrence.apply(spec, lengths, xw, h0, c0, *w)
        return outputs, tuple(final)
    with torch.no_grad():
        kernel = _kernel(spec, dict(zip(WEIGHT_NAMES, w)))
        outputs, final, *_ = _forward(kernel, xw, state, lengths, save=False)
    return outputs, final
