// GRU kernel: forward and backward of the time loop (equations in gatedrnn/cells.py::gru_step),
// gate blocks r, z, n (PyTorch order); options = [reset_after (1 or 0)].
//   reset_after:  a = h W_hh^T + b_hh = [a_r, a_z, hn]                      (B, 3H), one GEMM
//                 r = sigmoid(x_r + a_r), z = sigmoid(x_z + a_z), n = tanh(x_n + r * hn)
//   reset before: [a_r, a_z] = h W_hh[:2H]^T + b_hh[:2H]                    (B, 2H), GEMM 1
//                 r, z as above; rh = r * h; n = tanh(x_n + rh W_hn^T + b_hn)      GEMM 2
//   h' = (1 - z) * n + z * h = n + z * (h - n)
// Saved for backward (only when a gradient is needed): the gate activations [r, z, n] of
// every step, (T, B, 3H), and a (T, B, H) tensor: hn = W_hn h + b_hn (reset_after) or
// rh = r * h (reset before, the input of W_hn, for its gradient). With the output
// (T, B, H) that is 5H values per step and sequence.
#include "common.h"

namespace gatedrnn {
namespace {

template <typename T>
void gru_forward_kernel(const Tensor& xw, const Tensor& gates, const Tensor& hidden, const Tensor& h_state,
                        const Tensor& output, const Weights& weights, const Lengths& lengths, bool reset_after) {
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h_state.size(1);
  const T* x_all = xw.data_ptr<T>();                                   // (T, B, 3H)
  T* saved_gates = gates.defined() ? gates.data_ptr<T>() : nullptr;    // (T, B, 3H) or null
  T* saved_hidden = hidden.defined() ? hidden.data_ptr<T>() : nullptr; // (T, B, H) or null
  T* h = h_state.data_ptr<T>();                                        // (B, H)
  T* out = output.data_ptr<T>();                                       // (T, B, H)
  const T* w = weights.ptr<T>(kWeightHH);                              // (3H, H)
  const T* bias = weights.ptr<T>(kBiasHH);                             // (3H,) or null
  const T* w_n = w + 2 * H * H;                                        // W_hn (H, H)
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> scratch_gates(saved_gates ? 0 : rows * 3 * H);
    std::vector<T> scratch_hidden(saved_hidden ? 0 : rows * H);
    for (int64_t t = 0; t < steps; ++t) {
      // a_block: the recurrent pre-activations, overwritten in place by r, z, n.
      T* a_block = saved_gates ? saved_gates + (t * batch + b0) * 3 * H : scratch_gates.data();
      // s_block: hn (reset_after) or rh (reset before).
      T* s_block = saved_hidden ? saved_hidden + (t * batch + b0) * H : scratch_hidden.data();
      if (reset_after) {
        gemm_a_wt<T>(rows, 3 * H, H, h + b0 * H, H, w, H, a_block, 3 * H, T(0));  // a = h W_hh^T
        for (int64_t b = b0; b < b1; ++b) {
          T* a = a_block + (b - b0) * 3 * H;
          T* hn = s_block + (b - b0) * H;
          const T* x = x_all + (t * batch + b) * 3 * H;
          T* hb = h + b * H;
          T* ob = out + (t * batch + b) * H;
          if (!lengths.valid(t, b)) {
            std::fill(ob, ob + H, T(0));
            continue;
          }
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            Vec<T> ar = vload(a + j, n) + vload(x + j, n);
            Vec<T> az = vload(a + H + j, n) + vload(x + H + j, n);
            Vec<T> an = vload(a + 2 * H + j, n);
            if (bias) {
              ar = ar + vload(bias + j, n);
              az = az + vload(bias + H + j, n);
              an = an + vload(bias + 2 * H + j, n);
            }
            const Vec<T> r = vsigmoid(ar), z = vsigmoid(az);
            const Vec<T> g = vtanh(vload(x + 2 * H + j, n) + r * an);
            if (saved_gates) {
              vstore(r, a + j, n);
              vstore(z, a + H + j, n);
              vstore(g, a + 2 * H + j, n);
              vstore(an, hn + j, n);
            }
            const Vec<T> h_new = g + z * (vload(hb + j, n) - g);
            vstore(h_new, hb + j, n);
            vstore(h_new, ob + j, n);
          });
        }
      } else {
        gemm_a_wt<T>(rows, 2 * H, H, h + b0 * H, H, w, H, a_block, 3 * H, T(0));  // [a_r, a_z]
        for (int64_t b = b0; b < b1; ++b) {
          T* a = a_block + (b - b0) * 3 * H;
          T* rh = s_block + (b - b0) * H;
          const T* x = x_all + (t * batch + b) * 3 * H;
          const T* hb = h + b * H;
          if (!lengths.valid(t, b)) {  // rh enters the W_hn gradient GEMM: keep it finite
            std::fill(rh, rh + H, T(0));
            continue;
          }
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            Vec<T> ar = vload(a + j, n) + vload(x + j, n);
            Vec<T> az = vload(a + H + j, n) + vload(x + H + j, n);
            if (bias) {
              ar = ar + vload(bias + j, n);
              az = az + vload(bias + H + j, n);
            }
            const Vec<T> r = vsigmoid(ar);
            vstore(r, a + j, n);
            vstore(vsigmoid(az), a + H + j, n);
            vstore(r * vload(hb + j, n), rh + j, n);
          });
        }
        gemm_a_wt<T>(rows, H, H, s_block, H, w_n, H, a_block + 2 * H, 3 * H, T(0));  // rh W_hn^T
        for (int64_t b = b0; b < b1; ++b) {
          T* a = a_block + (b - b0) * 3 * H;
          const T* x = x_all + (t * batch + b) * 3 * H;
          T* hb = h + b * H;
          T* ob = out + (t * batch + b) * H;
          if (!lengths.valid(t, b)) {
            std::fill(ob, ob + H, T(0));
            continue;
          }
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            Vec<T> an = vload(a + 2 * H + j, n) + vload(x + 2 * H + j, n);
            if (bias) an = an + vload(bias + 2 * H + j, n);
            const Vec<T> g = vtanh(an);
            vstore(g, a + 2 * H + j, n);
            const Vec<T> h_new = g + vload(a + H + j, n) * (vload(hb + j, n) - g);
            vstore(h_new, hb + j, n);
            vstore(h_new, ob + j, n);
          });
        }
      }
    }
  });
}

// grad_xw (T, B, 3H): the gradients of the pre-activations [x_r, x_z, x_n].
// d_hw (T, B, 3H), reset_after only: those of h W_hh^T + b_hh, which differ in the n
// block (d hn = d x_n * r). For reset before they equal grad_xw (d_hw undefined).
template <typename T>
void gru_backward_kernel(const Tensor& grad_output, const Tensor& dh_state, const Tensor& grad_xw,
                         const Tensor& d_hw, const Tensor& gates, const Tensor& hidden, const Tensor& output,
                         const Tensor& h0, const Weights& weights, const Lengths& lengths, bool reset_after) {
  const int64_t steps = gates.size(0), batch = gates.size(1), H = h0.size(1);
  const T* gout = grad_output.data_ptr<T>();  // (T, B, H)
  T* dh = dh_state.data_ptr<T>();             // (B, H), dL/dh_t carried backwards
  T* dx_all = grad_xw.data_ptr<T>();          // (T, B, 3H)
  T* dhw_all = reset_after ? d_hw.data_ptr<T>() : nullptr;  // (T, B, 3H)
  const T* g_all = gates.data_ptr<T>();       // (T, B, 3H): r, z, n
  const T* s_all = hidden.data_ptr<T>();      // (T, B, H): hn or rh
  const T* out = output.data_ptr<T>();
  const T* w = weights.ptr<T>(kWeightHH);     // (3H, H)
  const T* w_n = w + 2 * H * H;               // W_hn (H, H)
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> drh_block(reset_after ? 0 : rows * H);  // d(r * h) for the block
    const Vec<T> one(T(1));
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* h_prev = previous_h(t, h0.data_ptr<T>(), out, batch * H);
      T* dx_block = dx_all + (t * batch + b0) * 3 * H;
      if (reset_after) {
        T* dhw_block = dhw_all + (t * batch + b0) * 3 * H;
        for (int64_t b = b0; b < b1; ++b) {
          T* dx = dx_block + (b - b0) * 3 * H;
          T* dhw = dhw_block + (b - b0) * 3 * H;
          T* dhb = dh + b * H;
          if (!lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
            std::fill(dx, dx + 3 * H, T(0));
            std::fill(dhw, dhw + 3 * H, T(0));
            continue;
          }
          const T* g = g_all + (t * batch + b) * 3 * H;
          const T* hn = s_all + (t * batch + b) * H;
          const T* go = gout + (t * batch + b) * H;
          const T* hp = h_prev + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> r = vload(g + j, n), z = vload(g + H + j, n), nn = vload(g + 2 * H + j, n);
            const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
            const Vec<T> dn = dtotal * (one - z) * (one - nn * nn);
            const Vec<T> dz = dtotal * (vload(hp + j, n) - nn) * z * (one - z);
            const Vec<T> dr = dn * vload(hn + j, n) * r * (one - r);
            vstore(dr, dx + j, n);
            vstore(dz, dx + H + j, n);
            vstore(dn, dx + 2 * H + j, n);
            vstore(dr, dhw + j, n);
            vstore(dz, dhw + H + j, n);
            vstore(dn * r, dhw + 2 * H + j, n);
            vstore(dtotal * z, dhb + j, n);
          });
        }
        // dh[b0:b1] += d_hw_t[b0:b1] @ W_hh
        gemm_a_w<T>(rows, H, 3 * H, dhw_block, 3 * H, w, H, dh + b0 * H, H, T(1));
      } else {
        for (int64_t b = b0; b < b1; ++b) {
          T* dx = dx_block + (b - b0) * 3 * H;
          T* dhb = dh + b * H;
          if (!lengths.valid(t, b)) {
            std::fill(dx, dx + 3 * H, T(0));
            continue;
          }
          const T* g = g_all + (t * batch + b) * 3 * H;
          const T* go = gout + (t * batch + b) * H;
          const T* hp = h_prev + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> z = vload(g + H + j, n), nn = vload(g + 2 * H + j, n);
            const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
            vstore(dtotal * (vload(hp + j, n) - nn) * z * (one - z), dx + H + j, n);
            vstore(dtotal * (one - z) * (one - nn * nn), dx + 2 * H + j, n);
            vstore(dtotal * z, dhb + j, n);
          });
        }
        // d(r h) = d x_n @ W_hn
        gemm_a_w<T>(rows, H, H, dx_block + 2 * H, 3 * H, w_n, H, drh_block.data(), H, T(0));
        for (int64_t b = b0; b < b1; ++b) {
          if (!lengths.valid(t, b)) continue;
          T* dx = dx_block + (b - b0) * 3 * H;
          T* dhb = dh + b * H;
          const T* drh = drh_block.data() + (b - b0) * H;
          const T* r_ptr = g_all + (t * batch + b) * 3 * H;
          const T* hp = h_prev + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> r = vload(r_ptr + j, n), d = vload(drh + j, n);
            vstore(d * vload(hp + j, n) * r * (one - r), dx + j, n);
            vstore(vload(dhb + j, n) + d * r, dhb + j, n);
          });
        }
        // dh[b0:b1] += [d x_r, d x_z]_t[b0:b1] @ W_hh[:2H]
        gemm_a_w<T>(rows, H, 2 * H, dx_block, 3 * H, w, H, dh + b0 * H, H, T(1));
      }
    }
  });
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> gru_forward(
    const Tensor& xw_in, at::TensorList state, at::TensorList weight_list, at::IntArrayRef slots,
    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor xw = xw_in.contiguous();
  Tensor h = state[0].contiguous().clone();
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h.size(1);
  TORCH_CHECK(xw.size(2) == 3 * H, "gatedrnn: gru_forward expects xw of size 3H in its last dimension");
  Tensor gates = save ? at::empty_like(xw) : Tensor();                              // r, z, n
  Tensor hidden = save ? at::empty({steps, batch, H}, xw.options()) : Tensor();     // hn or rh
  Tensor output = at::empty({steps, batch, H}, xw.options());
  const bool reset_after = options[0] != 0.0;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_forward", [&] {
    gru_forward_kernel<scalar_t>(xw, gates, hidden, h, output, weights, Lengths(lens), reset_after);
  });
  return {output, {h}, save ? std::vector<Tensor>{gates, hidden} : std::vector<Tensor>{}};
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> gru_backward(
    const Tensor& grad_output, at::TensorList grad_state, const Tensor& /*xw*/, at::TensorList state, at::TensorList weight_list,
    at::IntArrayRef slots, const std::optional<Tensor>& lengths, at::ArrayRef<double> options,
    const Tensor& output_in, at::TensorList saved) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor h0 = state[0].contiguous();
  const Tensor gates = saved[0].contiguous();
  const Tensor hidden = saved[1].contiguous();
  const Tensor output = output_in.contiguous();
  const bool reset_after = options[0] != 0.0;
  const int64_t H = h0.size(1);
  Tensor dh = grad_state[0].contiguous().clone();
  Tensor grad_xw = at::empty_like(gates);
  Tensor d_hw = reset_after ? at::empty_like(gates) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward", [&] {
    gru_backward_kernel<scalar_t>(grad_output.contiguous(), dh, grad_xw, d_hw, gates, hidden, output, h0,
                                  weights, Lengths(lens), reset_after);
  });
  std::array<Tensor, kNumSlots> grads;
  if (reset_after) {
    std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(d_hw, h0, output);
  } else {
    // rows r, z: against h_{t-1}; rows n: against r_t * h_{t-1} (saved), over all T * B rows.
    const Tensor d_rz = grad_xw.narrow(2, 0, 2 * H), d_n = grad_xw.narrow(2, 2 * H, H);
    auto [grad_w_rz, grad_b_rz] = recurrent_weight_grads(d_rz, h0, output);
    const Tensor grad_w_n = d_n.reshape({-1, H}).t().mm(hidden.reshape({-1, H}));
    grads[kWeightHH] = at::cat({grad_w_rz, grad_w_n}, 0);
    grads[kBiasHH] = at::cat({grad_b_rz, d_n.sum({0, 1})}, 0);
  }
  return {grad_xw, {dh}, in_slot_order(grads, slots)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
}

}  // namespace gatedrnn
