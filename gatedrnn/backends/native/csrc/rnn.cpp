// Elman RNN kernel: forward and backward of the time loop (equations in gatedrnn/cells.py).
//   h' = act(xw_t + W_hh h + b_hh),  act = tanh (options[0] = 0) or relu (options[0] = 1)
// Nothing is saved beyond the output: act'(a) is a function of h' (1 - h'^2, or h' > 0).
#include "common.h"

namespace gatedrnn {
namespace {

struct RNN {
  static constexpr const char* kName = "rnn";

  static std::vector<Tensor> saved(const ForwardArgs&) { return {}; }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.output.size(2);
    const bool relu = args.options[0] != 0.0;
    const T* x_all = args.xw.data_ptr<T>();            // (T, B, H)
    T* h = result.state[0].data_ptr<T>();              // (B, H)
    T* out = result.output.data_ptr<T>();              // (T, B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);       // (H, H)
    const T* bias = args.weights.ptr<T>(kBiasHH);      // (H,) or null
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      for (int64_t t = 0; t < steps; ++t) {
        T* a_block = out + (t * batch + b0) * H;
        gemm_a_wt<T>(b1 - b0, H, H, h + b0 * H, H, w, H, a_block, H, T(0));  // out_t = h W_hh^T
        args.lengths.for_valid_rows(t, b0, b1, a_block, H, [&](int64_t b) {
          T* ob = out + (t * batch + b) * H;
          const T* x = x_all + (t * batch + b) * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            store_activation(vload(ob + j, n) + vload(x + j, n), bias, j, n, relu, ob, h + b * H);
          });
        });
      }
    });
  }

  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.output.size(2);
    const bool relu = args.options[0] != 0.0;
    const T* gout = args.grad_output.data_ptr<T>();    // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();        // (B, H), dL/dh_t carried backwards
    T* da_all = result.grad_xw.data_ptr<T>();          // (T, B, H)
    const T* out = args.output.data_ptr<T>();
    const T* w = args.weights.ptr<T>(kWeightHH);       // (H, H)
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        // frozen rows (past their length): the gradient passes through unchanged
        args.lengths.for_valid_rows(t, b0, b1, da_all + (t * batch + b0) * H, H, [&](int64_t b) {
          T* da = da_all + (t * batch + b) * H;
          T* dhb = dh + b * H;
          const T* go = gout + (t * batch + b) * H;
          const T* hb = out + (t * batch + b) * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
            vstore(dtotal * activation_slope(vload(hb + j, n), relu), da + j, n);
            vstore(Vec<T>(T(0)), dhb + j, n);  // h enters the next step only through W_hh
          });
        });
        // dh[b0:b1] += da_t[b0:b1] @ W_hh
        gemm_a_w<T>(b1 - b0, H, H, da_all + (t * batch + b0) * H, H, w, H, dh + b0 * H, H, T(1));
      }
    });
    auto& grads = result.grad_weights;
    std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(result.grad_xw, args.state[0], args.output);
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::RNN)
