// IndRNN kernel: forward and backward of the time loop (equations in gatedrnn/cells.py::indrnn_step);
// options = [relu (1) or tanh (0), recurrent_max (+inf when unset)].
//   h' = act(xw_t + u_c * h + b_hh),  u_c = clamp(u, -recurrent_max, recurrent_max)
// weight_hh is the vector u (H,): no GEMM, and every unit of every sequence recurs on
// itself only, so the (B, H) elements of a step (not just the rows) are split across
// threads, once for the whole sequence. Nothing is saved beyond the output: act'(a) is
// a function of h' (1 - h'^2, or h' > 0).
#include "common.h"

namespace gatedrnn {
namespace {

// Runs body(i0, i1) over [0, elements) in one contiguous range per thread, when the
// whole sequence (steps * elements) is worth a thread each; else inline.
template <typename F>
inline void for_element_blocks(int64_t steps, int64_t elements, F&& body) {
  constexpr int64_t kMinWorkPerThread = 32 * 1024;
  const int64_t threads = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), steps * elements / kMinWorkPerThread));
  at::parallel_for(0, elements, (elements + threads - 1) / threads, body);
}

// Calls f(b, j0, j1) for the pieces of the flat (B, H) range [i0, i1) within each row b.
template <typename F>
inline void for_row_pieces(int64_t i0, int64_t i1, int64_t H, F&& f) {
  for (int64_t b = i0 / H; b * H < i1; ++b) {
    f(b, std::max<int64_t>(i0 - b * H, 0), std::min<int64_t>(i1 - b * H, H));
  }
}

template <typename T>
void indrnn_forward_kernel(const Tensor& xw, const Tensor& h_state, const Tensor& output, const Tensor& u_clamped,
                           const Weights& weights, const Lengths& lengths, bool relu) {
  const int64_t steps = xw.size(0), batch = xw.size(1), H = h_state.size(1);
  const T* x_all = xw.data_ptr<T>();        // (T, B, H)
  T* h = h_state.data_ptr<T>();             // (B, H)
  T* out = output.data_ptr<T>();            // (T, B, H)
  const T* u = u_clamped.data_ptr<T>();     // (H,)
  const T* bias = weights.ptr<T>(kBiasHH);  // (H,) or null
  for_element_blocks(steps, batch * H, [&](int64_t i0, int64_t i1) {
    for (int64_t t = 0; t < steps; ++t) {
      for_row_pieces(i0, i1, H, [&](int64_t b, int64_t j0, int64_t j1) {
        T* ob = out + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {
          std::fill(ob + j0, ob + j1, T(0));
          return;
        }
        const T* x = x_all + (t * batch + b) * H;
        T* hb = h + b * H;
        vec_loop<T>(j1 - j0, [&](int64_t k, int64_t n) {
          const int64_t j = j0 + k;
          Vec<T> a = vload(x + j, n) + vload(u + j, n) * vload(hb + j, n);
          if (bias) a = a + vload(bias + j, n);
          const Vec<T> h_new = relu ? at::vec::clamp_min(a, Vec<T>(T(0))) : vtanh(a);
          vstore(h_new, ob + j, n);
          vstore(h_new, hb + j, n);
        });
      });
    }
  });
}

template <typename T>
void indrnn_backward_kernel(const Tensor& grad_output, const Tensor& dh_state, const Tensor& d_pre,
                            const Tensor& output, const Tensor& u_clamped, const Lengths& lengths, bool relu) {
  const int64_t steps = output.size(0), batch = output.size(1), H = output.size(2);
  const T* gout = grad_output.data_ptr<T>();  // (T, B, H)
  T* dh = dh_state.data_ptr<T>();             // (B, H), dL/dh_t carried backwards
  T* da_all = d_pre.data_ptr<T>();            // (T, B, H)
  const T* out = output.data_ptr<T>();
  const T* u = u_clamped.data_ptr<T>();       // (H,)
  for_element_blocks(steps, batch * H, [&](int64_t i0, int64_t i1) {
    for (int64_t t = steps - 1; t >= 0; --t) {
      for_row_pieces(i0, i1, H, [&](int64_t b, int64_t j0, int64_t j1) {
        T* da = da_all + (t * batch + b) * H;
        if (!lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
          std::fill(da + j0, da + j1, T(0));
          return;
        }
        const T* go = gout + (t * batch + b) * H;
        const T* hb = out + (t * batch + b) * H;
        T* dhb = dh + b * H;
        vec_loop<T>(j1 - j0, [&](int64_t k, int64_t n) {
          const int64_t j = j0 + k;
          const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
          const Vec<T> h_new = vload(hb + j, n), zero(T(0)), one(T(1));
          // act'(a): relu passes where a > 0, i.e. where h' > 0; tanh' = 1 - h'^2
          const Vec<T> slope = relu ? Vec<T>::blendv(zero, one, h_new > zero) : one - h_new * h_new;
          const Vec<T> dav = dtotal * slope;
          vstore(dav, da + j, n);
          vstore(dav * vload(u + j, n), dhb + j, n);
        });
      });
    }
  });
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> indrnn_forward(
    const Tensor& xw_in, at::TensorList state, at::TensorList weight_list, at::IntArrayRef slots,
    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor xw = xw_in.contiguous();
  Tensor h = state[0].contiguous().clone();
  TORCH_CHECK(weights[kWeightHH].dim() == 1 && xw.size(2) == h.size(1),
              "gatedrnn: indrnn_forward expects weight_hh of shape (H,) and xw of size H in its last dimension");
  const Tensor u_clamped = weights[kWeightHH].clamp(-options[1], options[1]);  // (H,)
  Tensor output = at::empty_like(xw);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "indrnn_forward", [&] {
    indrnn_forward_kernel<scalar_t>(xw, h, output, u_clamped, weights, Lengths(lens), options[0] != 0.0);
  });
  return {output, {h}, {}};
}

std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> indrnn_backward(
    const Tensor& grad_output, at::TensorList grad_state, const Tensor& /*xw*/, at::TensorList state, at::TensorList weight_list,
    at::IntArrayRef slots, const std::optional<Tensor>& lengths, at::ArrayRef<double> options,
    const Tensor& output_in, at::TensorList saved) {
  const Weights weights(weight_list, slots);
  const std::optional<Tensor> lens = contiguous_lengths(lengths);
  const Tensor h0 = state[0].contiguous();
  const Tensor output = output_in.contiguous();
  const Tensor& u = weights[kWeightHH];  // (H,)
  const double recurrent_max = options[1];
  const int64_t steps = output.size(0);
  const Tensor u_clamped = u.clamp(-recurrent_max, recurrent_max);
  Tensor dh = grad_state[0].contiguous().clone();
  Tensor d_pre = at::empty_like(output);
  AT_DISPATCH_FLOATING_TYPES(output.scalar_type(), "indrnn_backward", [&] {
    indrnn_backward_kernel<scalar_t>(grad_output.contiguous(), dh, d_pre, output, u_clamped, Lengths(lens),
                                     options[0] != 0.0);
  });
  // d u = sum over steps and rows of da_t * h_{t-1}; past a length da is zero.
  Tensor grad_u = d_pre[0].mul(h0).sum(0);  // (H,)
  if (steps > 1) grad_u += d_pre.narrow(0, 1, steps - 1).mul(output.narrow(0, 0, steps - 1)).sum({0, 1});
  grad_u.masked_fill_(u.abs().gt(recurrent_max), 0);  // clamp passes the gradient inside the range only
  std::array<Tensor, kNumSlots> grads;
  grads[kWeightHH] = grad_u;
  grads[kBiasHH] = d_pre.sum({0, 1});
  return {d_pre, {dh}, in_slot_order(grads, slots)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("indrnn_forward", &indrnn_forward);
  m.impl("indrnn_backward", &indrnn_backward);
}

}  // namespace gatedrnn
