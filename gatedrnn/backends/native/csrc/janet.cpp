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

struct JANET {
  static constexpr const char* kName = "janet";

  static std::vector<Tensor> saved(const ForwardArgs& args) { return {empty_like(args.xw)}; }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.output.size(2);
    const T* x_all = args.xw.data_ptr<T>();                          // (T, B, 2H)
    const Tensor gates = result.saved_or_none(0);
    T* saved = gates.defined() ? gates.data_ptr<T>() : nullptr;      // (T, B, 2H) or null
    T* h = result.state[0].data_ptr<T>();                            // (B, H)
    T* out = result.output.data_ptr<T>();                            // (T, B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);                     // (2H, H)
    const T* bias = args.weights.ptr<T>(kBiasHH);                    // (2H,) or null
    const Vec<T> exp_beta(std::exp(T(args.options[0])));
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      std::vector<T> scratch(saved ? 0 : (b1 - b0) * 2 * H);
      for (int64_t t = 0; t < steps; ++t) {
        T* a_block = saved ? saved + (t * batch + b0) * 2 * H : scratch.data();
        gemm_a_wt<T>(b1 - b0, 2 * H, H, h + b0 * H, H, w, H, a_block, 2 * H, T(0));  // a = h W_hh^T
        args.lengths.for_valid_rows(t, b0, b1, out + (t * batch + b0) * H, H, [&](int64_t b) {
          T* a = a_block + (b - b0) * 2 * H;
          const T* x = x_all + (t * batch + b) * 2 * H;
          T* hb = h + b * H;
          T* ob = out + (t * batch + b) * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> s = preactivation(a, x, bias, j, n), c = preactivation(a, x, bias, H + j, n);
            if (saved) {
              vstore(s, a + j, n);
              vstore(c, a + H + j, n);
            }
            const auto [f, i] = forget_and_input_gates(s, exp_beta);
            const Vec<T> h_new = f * vload(hb + j, n) + i * vtanh(c);
            vstore(h_new, hb + j, n);
            vstore(h_new, ob + j, n);
          });
        });
      }
    });
  }

  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.output.size(2);
    const T* gout = args.grad_output.data_ptr<T>();  // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();      // (B, H), dL/dh_t carried backwards
    T* da_all = result.grad_xw.data_ptr<T>();        // (T, B, 2H)
    const T* a_all = args.saved_tensor(0).data_ptr<T>();  // (T, B, 2H)
    const T* out = args.output.data_ptr<T>();
    const T* h0 = args.state[0].data_ptr<T>();
    const T* w = args.weights.ptr<T>(kWeightHH);     // (2H, H)
    const Vec<T> exp_beta(std::exp(T(args.options[0])));
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* h_prev = previous_h(t, h0, out, batch * H);
        // frozen rows (past their length): the gradient passes through unchanged
        args.lengths.for_valid_rows(t, b0, b1, da_all + (t * batch + b0) * 2 * H, 2 * H, [&](int64_t b) {
          const T* a = a_all + (t * batch + b) * 2 * H;
          T* da = da_all + (t * batch + b) * 2 * H;
          T* dhb = dh + b * H;
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
        });
        // dh[b0:b1] += da_t[b0:b1] @ W_hh
        gemm_a_w<T>(b1 - b0, H, 2 * H, da_all + (t * batch + b0) * 2 * H, 2 * H, w, H, dh + b0 * H, H, T(1));
      }
    });
    auto& grads = result.grad_weights;
    std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(result.grad_xw, args.state[0], args.output);
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::JANET)
