// Layer-normalised LSTM kernel: forward and backward of the time loop (equations in
// gatedrnn/cells.py, layernorm_lstm_step; the same math as gatedrnn/backends/fused.py,
// _LayerNormLSTM). options: forget_bias, eps.
//   r  = h W_hh^T = [r_i, r_f, r_g, r_o];  n_k = (r_k - mean r_k) rstd_k  per gate block k
//        of H units, rstd_k = 1 / sqrt(var r_k + eps) (biased variance)           (B, 4H)
//   a  = xw_t + g_hh n + b_hh   (xw_t is already LN(W_ih x) g_ih, computed before the loop)
//   i  = sigmoid(a_i),  f = sigmoid(a_f + forget_bias),  g = tanh(a_g),  o = sigmoid(a_o)
//   c' = f c + i g;  m = (c' - mean c') rstd_c over the H units;  h' = o tanh(g_c m + b_c)
// Saved for backward (only when a gradient is needed): the activations i, f, g, o
// (T, B, 4H), n (T, B, 4H), rstd (T, B, 4), m (T, B, H), rstd_c (T, B, 1) and the cell
// states c_t (T, B, H); with the output (T, B, H) that is 11H + 5 values per step and
// sequence, as the fused backend.
#include "common.h"

namespace gatedrnn {
namespace {

// What forward saves for backward, in the order of the op's saved list (Saved::allocate),
// or undefined tensors when nothing is saved.
struct Saved {
  Tensor gates, normed, rstd, m, rstd_c, cells;
  explicit Saved(const std::vector<Tensor>& saved) {
    if (saved.empty()) return;
    TORCH_CHECK(saved.size() == 6, "gatedrnn: layernorm_lstm_backward expects 6 saved tensors");
    gates = saved[0], normed = saved[1], rstd = saved[2], m = saved[3], rstd_c = saved[4], cells = saved[5];
  }
  static std::vector<Tensor> allocate(const ForwardArgs& args) {
    const int64_t steps = args.steps, batch = args.batch, H = args.state[1].size(1);
    return {empty_like(args.xw),                // gates (T, B, 4H)
            empty_like(args.xw),                // normed (T, B, 4H)
            empty({steps, batch, 4}, args.xw),  // rstd
            empty({steps, batch, H}, args.xw),  // m
            empty({steps, batch, 1}, args.xw),  // rstd_c
            empty({steps, batch, H}, args.xw)}; // cells
  }
};

template <typename T>
inline T lane_sum(const Vec<T>& v) {
  T lanes[Vec<T>::size()];
  v.store(lanes);
  return std::accumulate(lanes, lanes + Vec<T>::size(), T(0));
}

// out (count) = (v - mean v) * rstd, rstd = 1 / sqrt(var v + eps) with the biased variance,
// as cells.py (centred first, then the mean of its squares); returns rstd. out may be v.
template <typename T>
inline T normalise(const T* v, T* out, int64_t count, T eps) {
  Vec<T> sum(T(0));  // the partial loads fill their missing lanes with zeros
  vec_loop<T>(count, [&](int64_t j, int64_t n) { sum = sum + vload(v + j, n); });
  const Vec<T> mean(lane_sum(sum) / T(count));
  Vec<T> squares(T(0));
  vec_loop<T>(count, [&](int64_t j, int64_t n) {
    const Vec<T> d = vload(v + j, n) - mean;
    squares = squares + Vec<T>::set(Vec<T>(T(0)), d * d, n);  // the missing lanes hold mean^2
  });
  const T rstd = T(1) / std::sqrt(lane_sum(squares) / T(count) + eps);
  vec_loop<T>(count, [&](int64_t j, int64_t n) { vstore((vload(v + j, n) - mean) * Vec<T>(rstd), out + j, n); });
  return rstd;
}

// d (count): the gradient of n = (v - mean v) rstd, overwritten with that of v:
// rstd (d - mean d - n mean(d n)).
template <typename T>
inline void normalise_backward(T* d, const T* normed, T rstd, int64_t count) {
  Vec<T> sum(T(0)), dot(T(0));
  vec_loop<T>(count, [&](int64_t j, int64_t n) {
    const Vec<T> dv = vload(d + j, n);
    sum = sum + dv;
    dot = dot + dv * vload(normed + j, n);
  });
  const Vec<T> mean(lane_sum(sum) / T(count)), mean_dot(lane_sum(dot) / T(count)), scale(rstd);
  vec_loop<T>(count, [&](int64_t j, int64_t n) {
    vstore(scale * (vload(d + j, n) - mean - vload(normed + j, n) * mean_dot), d + j, n);
  });
}

// The LN weights: gains of the recurrent term (4H) and of the cell state (H), its bias (H).
template <typename T>
struct LayerNormWeights {
  const T* g_hh;
  const T* g_c;
  const T* b_c;
  explicit LayerNormWeights(const Weights& weights)
      : g_hh(weights.ptr<T>(kLayerNormHH)), g_c(weights.ptr<T>(kLayerNormCW)), b_c(weights.ptr<T>(kLayerNormCB)) {}
};

void check_weights(const Weights& weights) {
  TORCH_CHECK(weights.has(kWeightHH) && weights.has(kLayerNormHH) && weights.has(kLayerNormCW) &&
                  weights.has(kLayerNormCB),
              "gatedrnn: layernorm_lstm needs weight_hh, layernorm_hh_weight, layernorm_c_weight "
              "and layernorm_c_bias");
}

struct LayerNormLSTM {
  static constexpr const char* kName = "layernorm_lstm";

  static std::vector<Tensor> saved(const ForwardArgs& args) { return Saved::allocate(args); }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    check_weights(args.weights);
    const int64_t steps = args.steps, batch = args.batch, H = result.state[0].size(1);
    TORCH_CHECK(args.xw.size(2) == 4 * H, "gatedrnn: layernorm_lstm_forward expects xw of size 4H in its last dimension");
    const Saved saved(result.saved);
    const T forget_bias = T(args.options[0]), eps = T(args.options[1]);
    const bool save = saved.gates.defined();
    const T* x_all = args.xw.data_ptr<T>();                           // (T, B, 4H)
    T* act_all = save ? saved.gates.data_ptr<T>() : nullptr;          // (T, B, 4H): i, f, g, o
    T* n_all = save ? saved.normed.data_ptr<T>() : nullptr;           // (T, B, 4H)
    T* rstd_all = save ? saved.rstd.data_ptr<T>() : nullptr;          // (T, B, 4)
    T* m_all = save ? saved.m.data_ptr<T>() : nullptr;                // (T, B, H)
    T* rstd_c_all = save ? saved.rstd_c.data_ptr<T>() : nullptr;      // (T, B, 1)
    T* c_saved = save ? saved.cells.data_ptr<T>() : nullptr;          // (T, B, H)
    T* h = result.state[0].data_ptr<T>();                             // (B, H)
    T* c = result.state[1].data_ptr<T>();                             // (B, H)
    T* out = result.output.data_ptr<T>();                             // (T, B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);                      // (4H, H)
    const T* bias = args.weights.ptr<T>(kBiasHH);                     // (4H,) or null
    const LayerNormWeights<T> ln(args.weights);
    const Vec<T> forget(forget_bias);
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      // Without saving: the block's recurrent term, and one row's activations and LN(c').
      std::vector<T> n_scratch(save ? 0 : rows * 4 * H);
      std::vector<T> act_row(save ? 0 : 4 * H), m_row(save ? 0 : H);
      for (int64_t t = 0; t < steps; ++t) {
        // r = h W_hh^T, normalised in place row by row into n
        T* n_block = save ? n_all + (t * batch + b0) * 4 * H : n_scratch.data();
        gemm_a_wt<T>(rows, 4 * H, H, h + b0 * H, H, w, H, n_block, 4 * H, T(0));
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t row = t * batch + b;
          T* nr = n_block + (b - b0) * 4 * H;
          T* act = save ? act_all + row * 4 * H : act_row.data();
          T* mb = save ? m_all + row * H : m_row.data();
          T* cb = c + b * H;
          T* ob = out + row * H;
          if (!args.lengths.valid(t, b)) {  // frozen state; saved values finite (backward multiplies them by 0)
            if (save) {
              std::fill(act, act + 4 * H, T(0));
              std::fill(nr, nr + 4 * H, T(0));
              std::fill(rstd_all + row * 4, rstd_all + (row + 1) * 4, T(0));
              std::fill(mb, mb + H, T(0));
              rstd_c_all[row] = T(0);
              std::copy(cb, cb + H, c_saved + row * H);
            }
            std::fill(ob, ob + H, T(0));
            continue;
          }
          for (int64_t k = 0; k < 4; ++k) {
            const T rstd = normalise(nr + k * H, nr + k * H, H, eps);
            if (save) rstd_all[row * 4 + k] = rstd;
          }
          const T* x = x_all + row * 4 * H;
          const T* g_hh = ln.g_hh;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            Vec<T> a_i = vload(x + j, n) + vload(g_hh + j, n) * vload(nr + j, n);
            Vec<T> a_f = vload(x + H + j, n) + vload(g_hh + H + j, n) * vload(nr + H + j, n) + forget;
            Vec<T> a_g = vload(x + 2 * H + j, n) + vload(g_hh + 2 * H + j, n) * vload(nr + 2 * H + j, n);
            Vec<T> a_o = vload(x + 3 * H + j, n) + vload(g_hh + 3 * H + j, n) * vload(nr + 3 * H + j, n);
            if (bias) {
              a_i = a_i + vload(bias + j, n);
              a_f = a_f + vload(bias + H + j, n);
              a_g = a_g + vload(bias + 2 * H + j, n);
              a_o = a_o + vload(bias + 3 * H + j, n);
            }
            const Vec<T> i = vsigmoid(a_i), f = vsigmoid(a_f), g = vtanh(a_g), o = vsigmoid(a_o);
            const Vec<T> c_new = f * vload(cb + j, n) + i * g;
            vstore(i, act + j, n);
            vstore(f, act + H + j, n);
            vstore(g, act + 2 * H + j, n);
            vstore(o, act + 3 * H + j, n);
            vstore(c_new, cb + j, n);
            if (save) vstore(c_new, c_saved + row * H + j, n);
          });
          const T rstd_c = normalise(cb, mb, H, eps);
          if (save) rstd_c_all[row] = rstd_c;
          T* hb = h + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> y = vload(ln.g_c + j, n) * vload(mb + j, n) + vload(ln.b_c + j, n);
            const Vec<T> h_new = vload(act + 3 * H + j, n) * vtanh(y);
            vstore(h_new, hb + j, n);
            vstore(h_new, ob + j, n);
          });
        }
      }
    });
  }

  // grad_xw (T, B, 4H): the gradient of a, which is that of xw and of b_hh;
  // d_rec (T, B, 4H): that of r = h W_hh^T; d_y (T, B, H): that of y = g_c m + b_c.
  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    check_weights(args.weights);
    const int64_t steps = args.steps, batch = args.batch, H = args.state[1].size(1);
    const Saved saved({args.saved_tensor(0), args.saved_tensor(1), args.saved_tensor(2), args.saved_tensor(3),
                       args.saved_tensor(4), args.saved_tensor(5)});
    const Tensor d_rec = empty_like(saved.gates), d_y = empty_like(saved.m);
    const T* gout = args.grad_output.data_ptr<T>();    // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();        // (B, H), dL/dh_t carried backwards
    T* dc = result.grad_state[1].data_ptr<T>();        // (B, H), dL/dc_t carried backwards
    T* da_all = result.grad_xw.data_ptr<T>();          // (T, B, 4H)
    T* dr_all = d_rec.data_ptr<T>();                   // (T, B, 4H)
    T* dy_all = d_y.data_ptr<T>();                     // (T, B, H)
    const T* act_all = saved.gates.data_ptr<T>();      // (T, B, 4H): i, f, g, o
    const T* n_all = saved.normed.data_ptr<T>();       // (T, B, 4H)
    const T* rstd_all = saved.rstd.data_ptr<T>();      // (T, B, 4)
    const T* m_all = saved.m.data_ptr<T>();            // (T, B, H)
    const T* rstd_c_all = saved.rstd_c.data_ptr<T>();  // (T, B, 1)
    const T* c_all = saved.cells.data_ptr<T>();        // (T, B, H)
    const T* c0 = args.state[1].data_ptr<T>();         // (B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);       // (4H, H)
    const LayerNormWeights<T> ln(args.weights);
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      std::vector<T> dc_row(H);  // dL/dc' of one row, through LN(c') only
      const Vec<T> one(T(1));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* c_prev_all = previous_h(t, c0, c_all, batch * H);
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t row = t * batch + b;
          T* da = da_all + row * 4 * H;
          T* dr = dr_all + row * 4 * H;
          T* dy = dy_all + row * H;
          if (!args.lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
            std::fill(da, da + 4 * H, T(0));
            std::fill(dr, dr + 4 * H, T(0));
            std::fill(dy, dy + H, T(0));
            continue;
          }
          const T* act = act_all + row * 4 * H;
          const T* mb = m_all + row * H;
          const T* go = gout + row * H;
          T* dhb = dh + b * H;  // dL/dh', consumed here (re-accumulated by the GEMM below)
          T* dcm = dc_row.data();
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> o = vload(act + 3 * H + j, n), g_c = vload(ln.g_c + j, n);
            const Vec<T> tanh_y = vtanh(g_c * vload(mb + j, n) + vload(ln.b_c + j, n));  // recomputed
            const Vec<T> dtotal = vload(dhb + j, n) + vload(go + j, n);
            const Vec<T> dyv = dtotal * o * (one - tanh_y * tanh_y);
            vstore(dtotal * tanh_y * o * (one - o), da + 3 * H + j, n);
            vstore(dyv, dy + j, n);
            vstore(dyv * g_c, dcm + j, n);  // dL/dm
            vstore(Vec<T>(T(0)), dhb + j, n);
          });
          normalise_backward(dcm, mb, rstd_c_all[row], H);
          const T* cp = c_prev_all + b * H;
          T* dcb = dc + b * H;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> i = vload(act + j, n), f = vload(act + H + j, n), g = vload(act + 2 * H + j, n);
            const Vec<T> dc_new = vload(dcm + j, n) + vload(dcb + j, n);
            vstore(dc_new * g * i * (one - i), da + j, n);
            vstore(dc_new * vload(cp + j, n) * f * (one - f), da + H + j, n);
            vstore(dc_new * i * (one - g * g), da + 2 * H + j, n);
            vstore(dc_new * f, dcb + j, n);
          });
          // dr_k: the gradient of n_k = da_k g_hh_k taken back through the block's LN
          vec_loop<T>(4 * H, [&](int64_t j, int64_t n) {
            vstore(vload(da + j, n) * vload(ln.g_hh + j, n), dr + j, n);
          });
          const T* nr = n_all + row * 4 * H;
          for (int64_t k = 0; k < 4; ++k) normalise_backward(dr + k * H, nr + k * H, rstd_all[row * 4 + k], H);
        }
        // dh[b0:b1] += dr_t[b0:b1] @ W_hh (valid rows were zeroed above, frozen rows keep theirs)
        gemm_a_w<T>(b1 - b0, H, 4 * H, dr_all + (t * batch + b0) * 4 * H, 4 * H, w, H, dh + b0 * H, H, T(1));
      }
    });
    // Over all T * B rows: dW_hh = sum_t dr_t^T h_{t-1} (h0, then the outputs), the bias and
    // the gains from the gradients of the terms they enter.
    const Tensor& d_pre = result.grad_xw;
    auto& grads = result.grad_weights;
    grads[kWeightHH] = recurrent_weight_grads(d_rec, args.state[0], args.output).first;
    grads[kBiasHH] = d_pre.sum({0, 1});
    grads[kLayerNormHH] = d_pre.mul(saved.normed).sum({0, 1});
    grads[kLayerNormCW] = d_y.mul(saved.m).sum({0, 1});
    grads[kLayerNormCB] = d_y.sum({0, 1});
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::LayerNormLSTM)
