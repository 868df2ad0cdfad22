// Elman RNN kernel: forward and backward of the time loop (equations in gatedrnn/cells.py).
//   h' = act(xw_t + W_hh h + b_hh),  act = tanh (options[0] = 0) or relu (options[0] = 1)
// Nothing is saved beyond the output: act'(a) is a function of h' (1 - h'^2, or h' > 0).
#include "common.h"

namespace gatedrnn {
namespace {

template <typename T>
void rnn_forward_kernel(const Tensor& xw, const Tensor& h_state, const Tensor& output, const Weights& weights,
                        const Lengths& lengths, bool relu) {
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h_state.size(1);
  const T* x_all = xw.data_ptr<T>();       // (T, B, H)
  T* h = h_state.data_ptr<T>();            // (B, H)
  T* out = output.data_ptr<T>();           // (T, B, H)
  const T* w = weights.ptr<T>(kWeightHH);  // (H, H)
  const T* bias = weights.ptr<T>(kBiasHH); // (H,) or null
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    for (int64_t t = 0; t < steps; ++t) {
      T* a_block = out + (t * batch + b0) * H;
      gemm_a_wt<T>(b1 - b0, H, H, h + b0 * H, H, w, H, a_block, H, T(0));  // out_t = h W_hh^T
      for (int64_t b = b0; b < b1; ++b) {
        T* ob = out + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {
          std::fill(ob, ob + H, T(0));
          continue;
        }
        const T* x = x_all + (t * batch + b) * H;
        T* hb = h + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          Vec<T> a = vload(ob + j, n) + vload(x + j, n);
          if (bias) a = a + vload(bias + j, n);
          const Vec<T> h_new = relu ? at::vec::clamp_min(a, Vec<T>(T(0))) : vtanh(a);
          vstore(h_new, ob + j, n);
          vstore(h_new, hb + j, n);
        });
      }
    }
  });
}

template <typename T>
void rnn_backward_kernel(const Tensor& grad_output, const Tensor& dh_state, const Tensor& d_pre,
                         const Tensor& output, const Weights& weights, const Lengths& lengths, bool relu) {
  const int64_t steps = output.size(0), batch = output.size(1), H = output.size(2);
  const T* gout = grad_output.data_ptr<T>();  // (T, B, H)
  T* dh = dh_state.data_ptr<T>();             // (B, H), dL/dh_t carried backwards
  T* da_all = d_pre.data_ptr<T>();            // (T, B, H)
  const T* out = output.data_ptr<T>();
  const T* w = weights.ptr<T>(kWeightHH);     // (H, H)
  for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
    for (int64_t t = steps - 1; t >= 0; --t) {
      for (int64_t b = b0; b < b1; ++b) {
        T* da = da_all + (t * batch + b) * H;
        T* dhb = dh + b * H;
        if (!lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
          std::fill(da, da + H, T(0));
          continue;
        }
        const T* go = gout + (t * batch + b) * H;
        const T* hb = out + (t * batch + b) * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
          const Vec<T> h_new = vload(hb + j, n), zero(T(0)), one(T(1));
          // act'(a): relu passes where a > 0, i.e. where h' > 0; tanh' = 1 - h'^2
          const Vec<T> slope = relu ? Vec<T>::blendv(zero, one, h_new > zero) : one - h_new * h_new;
          vstore(dtotal * slope, da + j, n);
          vstore(zero, dhb + j, n);  // h enters the next step only through W_hh
        });
      }
      // dh[b0:b1] += da_t[b0:b1] @ W_hh
      gemm_a_w<T>(b1 - b0, H, H, da_all + (t * batch + b0) * H, H, w, H, dh + b0 * H, H, T(1));
    }
  });
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> rnn_forward(
    const Tensor& xw_in, at::TensorList state, at::TensorList weight_list, at::IntArrayRef slots,
    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor xw = xw_in.contiguous();
  Tensor h = state[0].contiguous().clone();
  Tensor output = at::empty_like(xw);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnn_forward", [&] {
    rnn_forward_kernel<scalar_t>(xw, h, output, weights, Lengths(lens), options[0] != 0.0);
  });
  return {output, {h}, {}};
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> rnn_backward(
    const Tensor& grad_output, at::TensorList grad_state, const Tensor& /*xw*/, at::TensorList state, at::TensorList weight_list,
    at::IntArrayRef slots, const std::optional<Tensor>& lengths, at::ArrayRef<double> options,
    const Tensor& output_in, at::TensorList saved) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor h0 = state[0].contiguous();
  const Tensor output = output_in.contiguous();
  Tensor dh = grad_state[0].contiguous().clone();
  Tensor d_pre = at::empty_like(output);
  AT_DISPATCH_FLOATING_TYPES(output.scalar_type(), "rnn_backward", [&] {
    rnn_backward_kernel<scalar_t>(grad_output.contiguous(), dh, d_pre, output, weights, Lengths(lens),
                                  options[0] != 0.0);
  });
  std::array<Tensor, kNumSlots> grads;
  std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(d_pre, h0, output);
  return {d_pre, {dh}, in_slot_order(grads, slots)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}

}  // namespace gatedrnn
