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

struct MGU {
  static constexpr const char* kName = "mgu";

  static std::vector<Tensor> saved(const ForwardArgs& args) { return {empty_like(args.xw)}; }  // f, n

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.output.size(2);
    TORCH_CHECK(args.xw.size(2) == 2 * H, "gatedrnn: mgu_forward expects xw of size 2H in its last dimension");
    const T* x_all = args.xw.data_ptr<T>();                      // (T, B, 2H)
    const Tensor gates = result.saved_or_none(0);
    T* saved = gates.defined() ? gates.data_ptr<T>() : nullptr;  // (T, B, 2H) or null
    T* h = result.state[0].data_ptr<T>();                        // (B, H)
    T* out = result.output.data_ptr<T>();                        // (T, B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);                 // (2H, H): W_f, W_h
    const T* bias = args.weights.ptr<T>(kBiasHH);                // (2H,) or null
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
          if (!args.lengths.valid(t, b)) continue;  // its q row keeps finite values of an earlier step
          T* g = g_block + (b - b0) * 2 * H;
          T* q = q_block.data() + (b - b0) * H;
          const T* x = x_all + (t * batch + b) * 2 * H;
          const T* hb = h + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> f = vsigmoid(preactivation(g, x, bias, j, n));
            vstore(f, g + j, n);
            vstore(f * vload(hb + j, n), q + j, n);
          });
        }
        gemm_a_wt<T>(rows, H, H, q_block.data(), H, w_h, H, g_block + H, 2 * H, T(0));  // q W_h^T
        args.lengths.for_valid_rows(t, b0, b1, out + (t * batch + b0) * H, H, [&](int64_t b) {
          T* ob = out + (t * batch + b) * H;
          T* g = g_block + (b - b0) * 2 * H;
          const T* x = x_all + (t * batch + b) * 2 * H;
          T* hb = h + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> cand = vtanh(preactivation(g, x, bias, H + j, n));
            vstore(cand, g + H + j, n);
            const Vec<T> hv = vload(hb + j, n);
            const Vec<T> h_new = hv + vload(g + j, n) * (cand - hv);
            vstore(h_new, hb + j, n);
            vstore(h_new, ob + j, n);
          });
        });
      }
    });
  }

  // The gradients of the pre-activations [x_f, x_h] (grad_xw) are those of xw, of b_hh and
  // of the two recurrent products h W_f^T and q W_h^T alike; q = f * h_{t-1} of every step
  // (zero past a length) is recomputed for the W_h gradient.
  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.output.size(2);
    const Tensor q_all = empty_like(args.output);  // (T, B, H)
    const T* gout = args.grad_output.data_ptr<T>();  // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();      // (B, H), dL/dh_t carried backwards
    T* d_all = result.grad_xw.data_ptr<T>();         // (T, B, 2H)
    T* q_out = q_all.data_ptr<T>();                  // (T, B, H)
    const T* g_all = args.saved_tensor(0).data_ptr<T>();  // (T, B, 2H): f, n
    const T* out = args.output.data_ptr<T>();
    const T* w = args.weights.ptr<T>(kWeightHH);     // (2H, H): W_f, W_h
    const T* w_h = w + H * H;                        // W_h (H, H)
    const T* h0 = args.state[0].data_ptr<T>();
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      std::vector<T> dq_block(rows * H);  // d(f * h) for the block
      const Vec<T> one(T(1));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* h_prev = previous_h(t, h0, out, batch * H);
        T* d_block = d_all + (t * batch + b0) * 2 * H;
        // dh holds dL/dh' (carried + this step's output gradient) between the two passes.
        // frozen rows (past their length): the gradient passes through unchanged
        args.lengths.for_valid_rows(t, b0, b1, d_block, 2 * H, [&](int64_t b) {
          T* d = d_block + (b - b0) * 2 * H;
          T* dhb = dh + b * H;
          const T* g = g_all + (t * batch + b) * 2 * H;
          const T* go = gout + (t * batch + b) * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> cand = vload(g + H + j, n);
            const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
            vstore(dtotal * vload(g + j, n) * (one - cand * cand), d + H + j, n);
            vstore(dtotal, dhb + j, n);
          });
        });
        // dq = d x_h @ W_h
        gemm_a_w<T>(rows, H, H, d_block + H, 2 * H, w_h, H, dq_block.data(), H, T(0));
        args.lengths.for_valid_rows(t, b0, b1, q_out + (t * batch + b0) * H, H, [&](int64_t b) {
          T* q = q_out + (t * batch + b) * H;
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
        });
        // dh[b0:b1] += d x_f[b0:b1] @ W_f
        gemm_a_w<T>(rows, H, H, d_block, 2 * H, w, H, dh + b0 * H, H, T(1));
      }
    });
    // rows f: against h_{t-1}; rows h: against q_t = f_t * h_{t-1}, over all T * B rows.
    const Tensor d_f = result.grad_xw.narrow(2, 0, H), d_n = result.grad_xw.narrow(2, H, H);
    auto [grad_w_f, grad_b_f] = recurrent_weight_grads(d_f, args.state[0], args.output);
    const Tensor grad_w_h = d_n.reshape({-1, H}).t().mm(q_all.view({-1, H}));
    result.grad_weights[kWeightHH] = concat_rows(grad_w_f, grad_w_h);
    result.grad_weights[kBiasHH] = concat_rows(grad_b_f, d_n.sum({0, 1}));
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::MGU)
