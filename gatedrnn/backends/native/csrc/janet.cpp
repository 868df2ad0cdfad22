// JANET kernel: forward and backward of the time loop (equations in gatedrnn/cells.py).
//   a = xw_t + W_hh h + b_hh = [s, c~]          (B, 2H)
//   h' = sigmoid(s) * h + (1 - sigmoid(s - beta)) * tanh(c~)
// Saved for backward (only when a gradient is needed): the pre-activations a of every
// step, (T, B, 2H); with the output (T, B, H) that is 3H values per step and sequence.
#include "common.h"

namespace gatedrnn {
namespace {

// sigmoid(s) and sigmoid(s - beta) from one exp: e^-(s - beta) = e^-s * e^beta.
template <typename T>
inline std::pair<Vec<T>, Vec<T>> forget_and_input_gates(const Vec<T>& s, const Vec<T>& exp_beta) {
  const Vec<T> one(T(1));
  const Vec<T> e = s.neg().exp();
  return {(one + e).reciprocal(), one - (one + e * exp_beta).reciprocal()};
}

template <typename T>
void janet_forward_kernel(const Tensor& xw, const Tensor& gates, const Tensor& h_state, const Tensor& output,
                          const Weights& weights, const Lengths& lengths, T beta) {
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h_state.size(1);
  const T* x_all = xw.data_ptr<T>();                          // (T, B, 2H)
  T* saved = gates.defined() ? gates.data_ptr<T>() : nullptr;  // (T, B, 2H) or null
  T* h = h_state.data_ptr<T>();                                // (B, H)
  T* out = output.data_ptr<T>();                               // (T, B, H)
  const T* w = weights.ptr<T>(kWeightHH);                      // (2H, H)
  const T* bias = weights.ptr<T>(kBiasHH);                     // (2H,) or null
  const Vec<T> exp_beta(std::exp(beta));
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(saved ? 0 : (b1 - b0) * 2 * H);
    for (int64_t t = 0; t < steps; ++t) {
      T* a_block = saved ? saved + (t * batch + b0) * 2 * H : scratch.data();
      gemm_a_wt<T>(b1 - b0, 2 * H, H, h + b0 * H, H, w, H, a_block, 2 * H, T(0));  // a = h W_hh^T
      for (int64_t b = b0; b < b1; ++b) {
        T* a = a_block + (b - b0) * 2 * H;
        const T* x = x_all + (t * batch + b) * 2 * H;
        T* hb = h + b * H;
        T* ob = out + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {
          std::fill(ob, ob + H, T(0));
          continue;
        }
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          Vec<T> s = vload(a + j, n) + vload(x + j, n);
          Vec<T> c = vload(a + H + j, n) + vload(x + H + j, n);
          if (bias) {
            s = s + vload(bias + j, n);
            c = c + vload(bias + H + j, n);
          }
          if (saved) {
            vstore(s, a + j, n);
            vstore(c, a + H + j, n);
          }
          const auto [f, i] = forget_and_input_gates(s, exp_beta);
          const Vec<T> h_new = f * vload(hb + j, n) + i * vtanh(c);
          vstore(h_new, hb + j, n);
          vstore(h_new, ob + j, n);
        });
      }
    }
  });
}

template <typename T>
void janet_backward_kernel(const Tensor& grad_output, const Tensor& dh_state, const Tensor& d_pre,
                           const Tensor& gates, const Tensor& output, const Tensor& h0, const Weights& weights,
                           const Lengths& lengths, T beta) {
  const int64_t steps = gates.size(0), batch = gates.size(1), H = h0.size(1);
  const T* gout = grad_output.data_ptr<T>();  // (T, B, H)
  T* dh = dh_state.data_ptr<T>();             // (B, H), dL/dh_t carried backwards
  T* da_all = d_pre.data_ptr<T>();            // (T, B, 2H)
  const T* a_all = gates.data_ptr<T>();
  const T* out = output.data_ptr<T>();
  const T* w = weights.ptr<T>(kWeightHH);     // (2H, H)
  const Vec<T> exp_beta(std::exp(beta));
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* h_prev = previous_h(t, h0.data_ptr<T>(), out, batch * H);
      for (int64_t b = b0; b < b1; ++b) {
        const T* a = a_all + (t * batch + b) * 2 * H;
        T* da = da_all + (t * batch + b) * 2 * H;
        T* dhb = dh + b * H;
        if (!lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
          std::fill(da, da + 2 * H, T(0));
          continue;
        }
        const T* go = gout + (t * batch + b) * H;
        const T* hp = h_prev + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          const Vec<T> one(T(1));
          const auto [f, i] = forget_and_input_gates(vload(a + j, n), exp_beta);
          const Vec<T> g = vtanh(vload(a + H + j, n));
          const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
          // d/ds [f h + i g] = f (1 - f) h - i (1 - i) g, since i = 1 - sigmoid(s - beta)
          const Vec<T> ds = dtotal * (vload(hp + j, n) * f * (one - f) - g * i * (one - i));
          vstore(ds, da + j, n);
          vstore(dtotal * i * (one - g * g), da + H + j, n);
          vstore(dtotal * f, dhb + j, n);
        });
      }
      // dh[b0:b1] += da_t[b0:b1] @ W_hh
      gemm_a_w<T>(b1 - b0, H, 2 * H, da_all + (t * batch + b0) * 2 * H, 2 * H, w, H, dh + b0 * H, H, T(1));
    }
  });
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> janet_forward(
    const Tensor& xw_in, at::TensorList state, at::TensorList weight_list, at::IntArrayRef slots,
    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor xw = xw_in.contiguous();
  Tensor gates = save ? at::empty_like(xw) : Tensor();  // the pre-activations, for backward
  Tensor h = state[0].contiguous().clone();
  Tensor output = at::empty({xw.size(0), xw.size(1), h.size(1)}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "janet_forward", [&] {
    janet_forward_kernel<scalar_t>(xw, gates, h, output, weights, Lengths(lens), (scalar_t)options[0]);
  });
  return {output, {h}, save ? std::vector<Tensor>{gates} : std::vector<Tensor>{}};
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> janet_backward(
    const Tensor& grad_output, at::TensorList grad_state, const Tensor& /*xw*/, at::TensorList state, at::TensorList weight_list,
    at::IntArrayRef slots, const std::optional<Tensor>& lengths, at::ArrayRef<double> options,
    const Tensor& output, at::TensorList saved) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor h0 = state[0].contiguous();
  const Tensor& gates = saved[0];
  Tensor dh = grad_state[0].contiguous().clone();
  Tensor d_pre = at::empty_like(gates);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "janet_backward", [&] {
    janet_backward_kernel<scalar_t>(grad_output.contiguous(), dh, d_pre, gates, output, h0, weights,
                                    Lengths(lens), (scalar_t)options[0]);
  });
  std::array<Tensor, kNumSlots> grads;
  std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(d_pre, h0, output);
  return {d_pre, {dh}, in_slot_order(grads, slots)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("janet_forward", &janet_forward);
  m.impl("janet_backward", &janet_backward);
}

}  // namespace gatedrnn
