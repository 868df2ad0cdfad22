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

struct GRU {
  static constexpr const char* kName = "gru";

  // The gate activations r, z, n (T, B, 3H) and hn or rh (T, B, H).
  static std::vector<Tensor> saved(const ForwardArgs& args) {
    const int64_t H = args.state[0].size(1);
    return {empty_like(args.xw), empty({args.steps, args.batch, H}, args.xw)};
  }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.output.size(2);
    TORCH_CHECK(args.xw.size(2) == 3 * H, "gatedrnn: gru_forward expects xw of size 3H in its last dimension");
    const bool reset_after = args.options[0] != 0.0;
    const Tensor gates = result.saved_or_none(0), hidden = result.saved_or_none(1);
    const T* x_all = args.xw.data_ptr<T>();                              // (T, B, 3H)
    T* saved_gates = gates.defined() ? gates.data_ptr<T>() : nullptr;    // (T, B, 3H) or null
    T* saved_hidden = hidden.defined() ? hidden.data_ptr<T>() : nullptr; // (T, B, H) or null
    T* h = result.state[0].data_ptr<T>();                                // (B, H)
    T* out = result.output.data_ptr<T>();                                // (T, B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);                         // (3H, H)
    const T* bias = args.weights.ptr<T>(kBiasHH);                        // (3H,) or null
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
          args.lengths.for_valid_rows(t, b0, b1, out + (t * batch + b0) * H, H, [&](int64_t b) {
            T* a = a_block + (b - b0) * 3 * H;
            T* hn = s_block + (b - b0) * H;
            const T* x = x_all + (t * batch + b) * 3 * H;
            T* hb = h + b * H;
            T* ob = out + (t * batch + b) * H;
            vec_loop<T>(H, [&](int64_t j, int64_t n) {
              const Vec<T> r = vsigmoid(preactivation(a, x, bias, j, n));
              const Vec<T> z = vsigmoid(preactivation(a, x, bias, H + j, n));
              const Vec<T> an = bias ? vload(a + 2 * H + j, n) + vload(bias + 2 * H + j, n) : vload(a + 2 * H + j, n);
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
          });
        } else {
          gemm_a_wt<T>(rows, 2 * H, H, h + b0 * H, H, w, H, a_block, 3 * H, T(0));  // [a_r, a_z]
          // past a length rh is zero: it enters the W_hn gradient GEMM
          args.lengths.for_valid_rows(t, b0, b1, s_block, H, [&](int64_t b) {
            T* a = a_block + (b - b0) * 3 * H;
            T* rh = s_block + (b - b0) * H;
            const T* x = x_all + (t * batch + b) * 3 * H;
            const T* hb = h + b * H;
            vec_loop<T>(H, [&](int64_t j, int64_t n) {
              const Vec<T> r = vsigmoid(preactivation(a, x, bias, j, n));
              vstore(r, a + j, n);
              vstore(vsigmoid(preactivation(a, x, bias, H + j, n)), a + H + j, n);
              vstore(r * vload(hb + j, n), rh + j, n);
            });
          });
          gemm_a_wt<T>(rows, H, H, s_block, H, w_n, H, a_block + 2 * H, 3 * H, T(0));  // rh W_hn^T
          args.lengths.for_valid_rows(t, b0, b1, out + (t * batch + b0) * H, H, [&](int64_t b) {
            T* a = a_block + (b - b0) * 3 * H;
            const T* x = x_all + (t * batch + b) * 3 * H;
            T* hb = h + b * H;
            T* ob = out + (t * batch + b) * H;
            vec_loop<T>(H, [&](int64_t j, int64_t n) {
              const Vec<T> g = vtanh(preactivation(a, x, bias, 2 * H + j, n));
              vstore(g, a + 2 * H + j, n);
              const Vec<T> h_new = g + vload(a + H + j, n) * (vload(hb + j, n) - g);
              vstore(h_new, hb + j, n);
              vstore(h_new, ob + j, n);
            });
          });
        }
      }
    });
  }

  // grad_xw (T, B, 3H): the gradients of the pre-activations [x_r, x_z, x_n].
  // d_hw (T, B, 3H), reset_after only: those of h W_hh^T + b_hh, which differ in the n
  // block (d hn = d x_n * r). For reset before they equal grad_xw.
  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.output.size(2);
    const bool reset_after = args.options[0] != 0.0;
    const Tensor d_hw = reset_after ? empty_like(args.saved_tensor(0)) : Tensor();
    const T* gout = args.grad_output.data_ptr<T>();             // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();                 // (B, H), dL/dh_t carried backwards
    T* dx_all = result.grad_xw.data_ptr<T>();                   // (T, B, 3H)
    T* dhw_all = reset_after ? d_hw.data_ptr<T>() : nullptr;    // (T, B, 3H)
    const T* g_all = args.saved_tensor(0).data_ptr<T>();        // (T, B, 3H): r, z, n
    const T* s_all = args.saved_tensor(1).data_ptr<T>();        // (T, B, H): hn or rh
    const T* out = args.output.data_ptr<T>();
    const T* h0 = args.state[0].data_ptr<T>();
    const T* w = args.weights.ptr<T>(kWeightHH);                // (3H, H)
    const T* w_n = w + 2 * H * H;                               // W_hn (H, H)
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      std::vector<T> drh_block(reset_after ? 0 : rows * H);  // d(r * h) for the block
      const Vec<T> one(T(1));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* h_prev = previous_h(t, h0, out, batch * H);
        T* dx_block = dx_all + (t * batch + b0) * 3 * H;
        if (reset_after) {
          T* dhw_block = dhw_all + (t * batch + b0) * 3 * H;
          for (int64_t b = b0; b < b1; ++b) {
            T* dx = dx_block + (b - b0) * 3 * H;
            T* dhw = dhw_block + (b - b0) * 3 * H;
            T* dhb = dh + b * H;
            if (!args.lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
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
          args.lengths.for_valid_rows(t, b0, b1, dx_block, 3 * H, [&](int64_t b) {
            T* dx = dx_block + (b - b0) * 3 * H;
            T* dhb = dh + b * H;
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
          });
          // d(r h) = d x_n @ W_hn
          gemm_a_w<T>(rows, H, H, dx_block + 2 * H, 3 * H, w_n, H, drh_block.data(), H, T(0));
          for (int64_t b = b0; b < b1; ++b) {
            if (!args.lengths.valid(t, b)) continue;
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
    const Tensor& h0_tensor = args.state[0];
    auto& grads = result.grad_weights;
    if (reset_after) {
      std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(d_hw, h0_tensor, args.output);
      return;
    }
    // rows r, z: against h_{t-1}; rows n: against r_t * h_{t-1} (saved), over all T * B rows.
    const Tensor d_rz = result.grad_xw.narrow(2, 0, 2 * H), d_n = result.grad_xw.narrow(2, 2 * H, H);
    auto [grad_w_rz, grad_b_rz] = recurrent_weight_grads(d_rz, h0_tensor, args.output);
    const Tensor grad_w_n = d_n.reshape({-1, H}).t().mm(args.saved_tensor(1).reshape({-1, H}));
    grads[kWeightHH] = concat_rows(grad_w_rz, grad_w_n);
    grads[kBiasHH] = concat_rows(grad_b_rz, d_n.sum({0, 1}));
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::GRU)
