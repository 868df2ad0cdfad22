// MGU kernel: forward and backward of the time loop (equations in gatedrnn/cells.py::mgu_step),
// gate blocks f, h; no options.
//   f = sigmoid(x_f + h W_f^T + b_f)                        GEMM 1, W_f = W_hh[:H]
//   q = f * h;  n = tanh(x_h + q W_h^T + b_h)               GEMM 2, W_h = W_hh[H:]
//   h' = h + f * (n - h)
// The same shape of problem as the GRU with the reset gate first: the second GEMM's
// input depends on the first's result, so a step is GEMM, pointwise, GEMM, pointwise.
// Saved for backward (only when a gradient is needed): the activations [f, n] of every
// step, (T, B, 2H); with the output (T, B, H) that is 3H values per step and sequence.
// q = f * h, the input of W_h, is not saved: the backward loop recomputes it for the W_h
// gradient, one GEMM after the loop.
#include "common.h"

namespace gatedrnn {
namespace {

template <typename T>
void mgu_forward_kernel(const Tensor& xw, const Tensor& gates, const Tensor& h_state, const Tensor& output,
                        const Weights& weights, const Lengths& lengths) {
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h_state.size(1);
  const T* x_all = xw.data_ptr<T>();                          // (T, B, 2H)
  T* saved = gates.defined() ? gates.data_ptr<T>() : nullptr;  // (T, B, 2H) or null
  T* h = h_state.data_ptr<T>();                                // (B, H)
  T* out = output.data_ptr<T>();                               // (T, B, H)
  const T* w = weights.ptr<T>(kWeightHH);                      // (2H, H): W_f, W_h
  const T* bias = weights.ptr<T>(kBiasHH);                     // (2H,) or null
  const T* w_h = w + H * H;                                    // W_h (H, H)
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> scratch(saved ? 0 : rows * 2 * H);
    std::vector<T> q_block(rows * H);  // f * h, the input of GEMM 2 (zero-initialised: finite)
    for (int64_t t = 0; t < steps; ++t) {
      // g_block: the recurrent pre-activations, overwritten in place by f and n.
      T* g_block = saved ? saved + (t * batch + b0) * 2 * H : scratch.data();
      gemm_a_wt<T>(rows, H, H, h + b0 * H, H, w, H, g_block, 2 * H, T(0));  // h W_f^T
      for (int64_t b = b0; b < b1; ++b) {
        if (!lengths.valid(t, b)) continue;  // its q row keeps finite values of an earlier step
        T* g = g_block + (b - b0) * 2 * H;
        T* q = q_block.data() + (b - b0) * H;
        const T* x = x_all + (t * batch + b) * 2 * H;
        const T* hb = h + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          Vec<T> af = vload(g + j, n) + vload(x + j, n);
          if (bias) af = af + vload(bias + j, n);
          const Vec<T> f = vsigmoid(af);
          vstore(f, g + j, n);
          vstore(f * vload(hb + j, n), q + j, n);
        });
      }
      gemm_a_wt<T>(rows, H, H, q_block.data(), H, w_h, H, g_block + H, 2 * H, T(0));  // q W_h^T
      for (int64_t b = b0; b < b1; ++b) {
        T* ob = out + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {
          std::fill(ob, ob + H, T(0));
          continue;
        }
        T* g = g_block + (b - b0) * 2 * H;
        const T* x = x_all + (t * batch + b) * 2 * H;
        T* hb = h + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          Vec<T> an = vload(g + H + j, n) + vload(x + H + j, n);
          if (bias) an = an + vload(bias + H + j, n);
          const Vec<T> cand = vtanh(an);
          vstore(cand, g + H + j, n);
          const Vec<T> hv = vload(hb + j, n);
          const Vec<T> h_new = hv + vload(g + j, n) * (cand - hv);
          vstore(h_new, hb + j, n);
          vstore(h_new, ob + j, n);
        });
      }
    }
  });
}

// d_pre (T, B, 2H): the gradients of the pre-activations [x_f, x_h], which are those of
// xw, of b_hh and of the two recurrent products h W_f^T and q W_h^T alike.
// q_all (T, B, H): q = f * h_{t-1} of every step (zero past a length), for the W_h gradient.
template <typename T>
void mgu_backward_kernel(const Tensor& grad_output, const Tensor& dh_state, const Tensor& d_pre,
                         const Tensor& q_all, const Tensor& gates, const Tensor& output, const Tensor& h0,
                         const Weights& weights, const Lengths& lengths) {
  const int64_t steps = gates.size(0), batch = gates.size(1), H = h0.size(1);
  const T* gout = grad_output.data_ptr<T>();  // (T, B, H)
  T* dh = dh_state.data_ptr<T>();             // (B, H), dL/dh_t carried backwards
  T* d_all = d_pre.data_ptr<T>();             // (T, B, 2H)
  T* q_out = q_all.data_ptr<T>();             // (T, B, H)
  const T* g_all = gates.data_ptr<T>();       // (T, B, 2H): f, n
  const T* out = output.data_ptr<T>();
  const T* w = weights.ptr<T>(kWeightHH);     // (2H, H): W_f, W_h
  const T* w_h = w + H * H;                   // W_h (H, H)
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> dq_block(rows * H);  // d(f * h) for the block
    const Vec<T> one(T(1));
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* h_prev = previous_h(t, h0.data_ptr<T>(), out, batch * H);
      T* d_block = d_all + (t * batch + b0) * 2 * H;
      // dh holds dL/dh' (carried + this step's output gradient) between the two passes.
      for (int64_t b = b0; b < b1; ++b) {
        T* d = d_block + (b - b0) * 2 * H;
        T* dhb = dh + b * H;
        if (!lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
          std::fill(d, d + 2 * H, T(0));
          continue;
        }
        const T* g = g_all + (t * batch + b) * 2 * H;
        const T* go = gout + (t * batch + b) * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          const Vec<T> cand = vload(g + H + j, n);
          const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
          vstore(dtotal * vload(g + j, n) * (one - cand * cand), d + H + j, n);
          vstore(dtotal, dhb + j, n);
        });
      }
      // dq = d x_h @ W_h
      gemm_a_w<T>(rows, H, H, d_block + H, 2 * H, w_h, H, dq_block.data(), H, T(0));
      for (int64_t b = b0; b < b1; ++b) {
        T* q = q_out + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {
          std::fill(q, q + H, T(0));
          continue;
        }
        T* d = d_block + (b - b0) * 2 * H;
        T* dhb = dh + b * H;
        const T* g = g_all + (t * batch + b) * 2 * H;
        const T* dq = dq_block.data() + (b - b0) * H;
        const T* hp = h_prev + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          const Vec<T> f = vload(g + j, n), cand = vload(g + H + j, n);
          const Vec<T> dtotal = vload(dhb + j, n), dqv = vload(dq + j, n), hv = vload(hp + j, n);
          // f enters h' = h + f (n - h) and q = f h
          vstore((dtotal * (cand - hv) + dqv * hv) * f * (one - f), d + j, n);
          vstore(dtotal + f * (dqv - dtotal), dhb + j, n);  // dtotal (1 - f) + dq f
          vstore(f * hv, q + j, n);
        });
      }
      // dh[b0:b1] += d x_f[b0:b1] @ W_f
      gemm_a_w<T>(rows, H, H, d_block, 2 * H, w, H, dh + b0 * H, H, T(1));
    }
  });
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> mgu_forward(
    const Tensor& xw_in, at::TensorList state, at::TensorList weight_list, at::IntArrayRef slots,
    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor xw = xw_in.contiguous();
  Tensor h = state[0].contiguous().clone();
  TORCH_CHECK(xw.size(2) == 2 * h.size(1), "gatedrnn: mgu_forward expects xw of size 2H in its last dimension");
  Tensor gates = save ? at::empty_like(xw) : Tensor();  // f, n
  Tensor output = at::empty({xw.size(0), xw.size(1), h.size(1)}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "mgu_forward", [&] {
    mgu_forward_kernel<scalar_t>(xw, gates, h, output, weights, Lengths(lens));
  });
  return {output, {h}, save ? std::vector<Tensor>{gates} : std::vector<Tensor>{}};
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> mgu_backward(
    const Tensor& grad_output, at::TensorList grad_state, const Tensor& /*xw*/, at::TensorList state, at::TensorList weight_list,
    at::IntArrayRef slots, const std::optional<Tensor>& lengths, at::ArrayRef<double> options,
    const Tensor& output_in, at::TensorList saved) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor h0 = state[0].contiguous();
  const Tensor gates = saved[0].contiguous();
  const Tensor output = output_in.contiguous();
  const int64_t H = h0.size(1);
  Tensor dh = grad_state[0].contiguous().clone();
  Tensor d_pre = at::empty_like(gates);
  Tensor q = at::empty_like(output);  // (T, B, H)
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "mgu_backward", [&] {
    mgu_backward_kernel<scalar_t>(grad_output.contiguous(), dh, d_pre, q, gates, output, h0, weights,
                                  Lengths(lens));
  });
  // rows f: against h_{t-1}; rows h: against q_t = f_t * h_{t-1}, over all T * B rows.
  const Tensor d_f = d_pre.narrow(2, 0, H), d_n = d_pre.narrow(2, H, H);
  std::array<Tensor, kNumSlots> grads;
  auto [grad_w_f, grad_b_f] = recurrent_weight_grads(d_f, h0, output);
  const Tensor grad_w_h = d_n.reshape({-1, H}).t().mm(q.view({-1, H}));
  grads[kWeightHH] = at::cat({grad_w_f, grad_w_h}, 0);
  grads[kBiasHH] = at::cat({grad_b_f, d_n.sum({0, 1})}, 0);
  return {d_pre, {dh}, in_slot_order(grads, slots)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("mgu_forward", &mgu_forward);
  m.impl("mgu_backward", &mgu_backward);
}

}  // namespace gatedrnn
