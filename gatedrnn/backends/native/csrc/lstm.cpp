// LSTM kernel: forward and backward of the time loop (equations in gatedrnn/cells.py,
// lstm_step), with every option: bias, projection (weight_hr), peepholes, forget_bias,
// cell_clip and proj_clip.
//   a  = xw_t + W_hh h + b_hh = [a_i, a_f, a_g, a_o]                       (B, 4H)
//   i  = sigmoid(a_i + p_i c),  f = sigmoid(a_f + forget_bias + p_f c),  g = tanh(a_g)
//   c' = clip(f c + i g, cell_clip),  o = sigmoid(a_o + p_o c'),  m = o tanh(c')
//   h' = clip(m W_hr^T, proj_clip) with a projection (h is (B, P)), else h' = m
// A clip of +inf is no clip. Saved for backward (only when a gradient is needed): the
// gate activations i, f, g, o (T, B, 4H), the cell states c_t (T, B, H) and, with a
// projection, m_t (T, B, H); with the output (T, B, P) that is 5H + P values per step
// and sequence (6H + P with a projection).
#include "common.h"

namespace gatedrnn {
namespace {

// Constants of one run: peephole weights (null when absent) and the clips.
template <typename T>
struct LSTMOptions {
  const T* p_i;
  const T* p_f;
  const T* p_o;
  T forget_bias, cell_clip, proj_clip;
  bool clip_cell() const { return std::isfinite(cell_clip); }
  bool clip_proj() const { return std::isfinite(proj_clip); }
  LSTMOptions(const Weights& weights, at::ArrayRef<double> options)
      : p_i(weights.ptr<T>(kWeightCI)), p_f(weights.ptr<T>(kWeightCF)), p_o(weights.ptr<T>(kWeightCO)),
        forget_bias((T)options[0]), cell_clip((T)options[1]), proj_clip((T)options[2]) {}
};

template <typename T>
inline Vec<T> vclip(const Vec<T>& x, T bound) {
  return at::vec::minimum(at::vec::maximum(x, Vec<T>(-bound)), Vec<T>(bound));
}

// g where |x| < bound (the clamp x was the output of was inactive), else 0.
template <typename T>
inline Vec<T> pass_unclipped(const Vec<T>& g, const Vec<T>& x, T bound) {
  return Vec<T>::blendv(Vec<T>(T(0)), g, x.abs() < Vec<T>(bound));
}

struct LSTM {
  static constexpr const char* kName = "lstm";

  // The gate activations i, f, g, o (T, B, 4H), the cell states c_t (T, B, H) and, with a
  // projection, m_t (T, B, H).
  static std::vector<Tensor> saved(const ForwardArgs& args) {
    const int64_t H = args.state[1].size(1);
    std::vector<Tensor> saved = {empty_like(args.xw), empty({args.steps, args.batch, H}, args.xw)};
    if (args.weights.has(kWeightHR)) saved.push_back(empty({args.steps, args.batch, H}, args.xw));
    return saved;
  }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.state[1].size(1), P = result.state[0].size(1);
    const LSTMOptions<T> opt(args.weights, args.options);
    const Tensor gates = result.saved_or_none(0), cells = result.saved_or_none(1), ms = result.saved_or_none(2);
    const T* x_all = args.xw.data_ptr<T>();                           // (T, B, 4H)
    T* saved = gates.defined() ? gates.data_ptr<T>() : nullptr;       // (T, B, 4H) or null
    T* saved_c = cells.defined() ? cells.data_ptr<T>() : nullptr;     // (T, B, H) or null
    T* saved_m = ms.defined() ? ms.data_ptr<T>() : nullptr;           // (T, B, H) or null
    T* h = result.state[0].data_ptr<T>();                             // (B, P)
    T* c = result.state[1].data_ptr<T>();                             // (B, H)
    T* out = result.output.data_ptr<T>();                             // (T, B, P)
    const T* w = args.weights.ptr<T>(kWeightHH);                      // (4H, P)
    const T* bias = args.weights.ptr<T>(kBiasHH);                     // (4H,) or null
    const T* w_hr = args.weights.ptr<T>(kWeightHR);                   // (P, H) or null
    const T forget_bias = opt.forget_bias, cell_clip = opt.cell_clip, proj_clip = opt.proj_clip;
    const bool clip_cell = opt.clip_cell(), clip_proj = w_hr && opt.clip_proj();
    const T *p_i = opt.p_i, *p_f = opt.p_f, *p_o = opt.p_o;
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      std::vector<T> scratch(saved ? 0 : rows * 4 * H);
      std::vector<T> m_scratch(w_hr && !saved_m ? rows * H : 0);
      for (int64_t t = 0; t < steps; ++t) {
        T* a_block = saved ? saved + (t * batch + b0) * 4 * H : scratch.data();
        T* m_block = w_hr ? (saved_m ? saved_m + (t * batch + b0) * H : m_scratch.data()) : nullptr;
        gemm_a_wt<T>(rows, 4 * H, P, h + b0 * P, P, w, P, a_block, 4 * H, T(0));  // a = h W_hh^T
        for (int64_t b = b0; b < b1; ++b) {
          T* a = a_block + (b - b0) * 4 * H;
          const T* x = x_all + (t * batch + b) * 4 * H;
          T* cb = c + b * H;
          T* cs = saved_c ? saved_c + (t * batch + b) * H : nullptr;
          T* mb = m_block ? m_block + (b - b0) * H : nullptr;
          if (!args.lengths.valid(t, b)) {  // frozen state; saved values finite (backward multiplies them by 0)
            if (saved) std::fill(a, a + 4 * H, T(0));
            if (cs) std::copy(cb, cb + H, cs);
            if (mb) std::fill(mb, mb + H, T(0));
            if (!w_hr) std::fill(out + (t * batch + b) * P, out + (t * batch + b + 1) * P, T(0));
            continue;
          }
          T* hb = h + b * H;                      // used without a projection only (P = H)
          T* ob = out + (t * batch + b) * H;      // idem
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> c_prev = vload(cb + j, n);
            Vec<T> a_i = preactivation(a, x, bias, j, n);
            Vec<T> a_f = preactivation(a, x, bias, H + j, n) + Vec<T>(forget_bias);
            const Vec<T> a_g = preactivation(a, x, bias, 2 * H + j, n);
            Vec<T> a_o = preactivation(a, x, bias, 3 * H + j, n);
            if (p_i) a_i = a_i + vload(p_i + j, n) * c_prev;
            if (p_f) a_f = a_f + vload(p_f + j, n) * c_prev;
            const Vec<T> i = vsigmoid(a_i), f = vsigmoid(a_f), g = vtanh(a_g);
            Vec<T> c_new = f * c_prev + i * g;
            if (clip_cell) c_new = vclip(c_new, cell_clip);
            if (p_o) a_o = a_o + vload(p_o + j, n) * c_new;
            const Vec<T> o = vsigmoid(a_o);
            const Vec<T> m = o * vtanh(c_new);
            if (saved) {
              vstore(i, a + j, n);
              vstore(f, a + H + j, n);
              vstore(g, a + 2 * H + j, n);
              vstore(o, a + 3 * H + j, n);
            }
            vstore(c_new, cb + j, n);
            if (cs) vstore(c_new, cs + j, n);
            if (mb) {
              vstore(m, mb + j, n);
            } else {
              vstore(m, hb + j, n);
              vstore(m, ob + j, n);
            }
          });
        }
        if (w_hr) {
          // out[t][b0:b1] = m W_hr^T; rows past their length have m = 0 and keep h.
          T* o_block = out + (t * batch + b0) * P;
          gemm_a_wt<T>(rows, P, H, m_block, H, w_hr, H, o_block, P, T(0));
          args.lengths.for_valid_rows(t, b0, b1, o_block, P, [&](int64_t b) {
            T* ob = o_block + (b - b0) * P;
            T* hb = h + b * P;
            vec_loop<T>(P, [&](int64_t j, int64_t n) {
              Vec<T> v = vload(ob + j, n);
              if (clip_proj) {
                v = vclip(v, proj_clip);
                vstore(v, ob + j, n);
              }
              vstore(v, hb + j, n);
            });
          });
        }
      }
    });
  }

  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.state[1].size(1), P = args.state[0].size(1);
    const LSTMOptions<T> opt(args.weights, args.options);
    const Tensor& cells = args.saved_tensor(1);
    const Tensor d_proj = args.weights.has(kWeightHR) ? empty({steps, batch, P}, cells) : Tensor();
    const T* gout = args.grad_output.data_ptr<T>();  // (T, B, P)
    T* dh = result.grad_state[0].data_ptr<T>();      // (B, P), dL/dh_t carried backwards
    T* dc = result.grad_state[1].data_ptr<T>();      // (B, H), dL/dc_t carried backwards
    T* da_all = result.grad_xw.data_ptr<T>();        // (T, B, 4H)
    T* dhp_all = d_proj.defined() ? d_proj.data_ptr<T>() : nullptr;  // (T, B, P): dL/d(m W_hr^T)
    const T* act_all = args.saved_tensor(0).data_ptr<T>();  // (T, B, 4H): i, f, g, o
    const T* c_all = cells.data_ptr<T>();            // (T, B, H)
    const T* out = args.output.data_ptr<T>();        // (T, B, P)
    const T* c0 = args.state[1].data_ptr<T>();       // (B, H)
    const T* w = args.weights.ptr<T>(kWeightHH);     // (4H, P)
    const T* w_hr = args.weights.ptr<T>(kWeightHR);  // (P, H) or null
    const T cell_clip = opt.cell_clip, proj_clip = opt.proj_clip;
    const bool clip_cell = opt.clip_cell(), clip_proj = w_hr && opt.clip_proj();
    const T *p_i = opt.p_i, *p_f = opt.p_f, *p_o = opt.p_o;
    for_batch_blocks(batch, [&](int64_t b0, int64_t b1) {
      const int64_t rows = b1 - b0;
      std::vector<T> dm_scratch(w_hr ? rows * H : 0);  // dL/dm of the block's rows
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* c_prev_all = previous_h(t, c0, c_all, batch * H);
        if (w_hr) {
          // dL/d(h' before its clip); dh of valid rows is consumed (re-accumulated below).
          T* dhp_block = dhp_all + (t * batch + b0) * P;
          args.lengths.for_valid_rows(t, b0, b1, dhp_block, P, [&](int64_t b) {
            T* dhp = dhp_block + (b - b0) * P;
            T* dhb = dh + b * P;
            const T* go = gout + (t * batch + b) * P;
            const T* ob = out + (t * batch + b) * P;
            vec_loop<T>(P, [&](int64_t j, int64_t n) {
              Vec<T> d = vload(dhb + j, n) + vload(go + j, n);
              if (clip_proj) d = pass_unclipped(d, vload(ob + j, n), proj_clip);
              vstore(d, dhp + j, n);
              vstore(Vec<T>(T(0)), dhb + j, n);
            });
          });
          gemm_a_w<T>(rows, H, P, dhp_block, P, w_hr, H, dm_scratch.data(), H, T(0));  // dm = dhp W_hr
        }
        for (int64_t b = b0; b < b1; ++b) {
          T* da = da_all + (t * batch + b) * 4 * H;
          if (!args.lengths.valid(t, b)) {  // frozen state: the gradient passes through unchanged
            std::fill(da, da + 4 * H, T(0));
            continue;
          }
          const T* act = act_all + (t * batch + b) * 4 * H;
          const T* cn = c_all + (t * batch + b) * H;
          const T* cp = c_prev_all + b * H;
          T* dcb = dc + b * H;
          T* dhb = dh + b * P;  // without a projection: dL/dm, consumed here
          const T* go = gout + (t * batch + b) * P;
          const T* dmb = w_hr ? dm_scratch.data() + (b - b0) * H : nullptr;
          vec_loop<T>(H, [&](int64_t j, int64_t n) {
            const Vec<T> one(T(1));
            const Vec<T> i = vload(act + j, n), f = vload(act + H + j, n);
            const Vec<T> g = vload(act + 2 * H + j, n), o = vload(act + 3 * H + j, n);
            const Vec<T> c_new = vload(cn + j, n), c_prev = vload(cp + j, n);
            Vec<T> dm;
            if (dmb) {
              dm = vload(dmb + j, n);
            } else {
              dm = vload(dhb + j, n) + vload(go + j, n);
              vstore(Vec<T>(T(0)), dhb + j, n);
            }
            const Vec<T> tc = vtanh(c_new);
            const Vec<T> da_o = dm * tc * o * (one - o);
            Vec<T> dc_new = vload(dcb + j, n) + dm * o * (one - tc * tc);
            if (p_o) dc_new = dc_new + da_o * vload(p_o + j, n);
            if (clip_cell) dc_new = pass_unclipped(dc_new, c_new, cell_clip);
            const Vec<T> da_i = dc_new * g * i * (one - i);
            const Vec<T> da_f = dc_new * c_prev * f * (one - f);
            const Vec<T> da_g = dc_new * i * (one - g * g);
            Vec<T> dc_prev = dc_new * f;
            if (p_i) dc_prev = dc_prev + da_i * vload(p_i + j, n);
            if (p_f) dc_prev = dc_prev + da_f * vload(p_f + j, n);
            vstore(da_i, da + j, n);
            vstore(da_f, da + H + j, n);
            vstore(da_g, da + 2 * H + j, n);
            vstore(da_o, da + 3 * H + j, n);
            vstore(dc_prev, dcb + j, n);
          });
        }
        // dh[b0:b1] += da_t[b0:b1] @ W_hh (valid rows were zeroed above, frozen rows keep theirs)
        gemm_a_w<T>(rows, P, 4 * H, da_all + (t * batch + b0) * 4 * H, 4 * H, w, P, dh + b0 * P, P, T(1));
      }
    });
    weight_grads(args, result, d_proj);
  }

  // After the loop, over all T * B rows at once.
  static void weight_grads(const BackwardArgs& args, BackwardResult& result, const Tensor& d_proj) {
    const int64_t steps = args.steps, H = args.state[1].size(1), P = args.state[0].size(1);
    const Tensor &d_pre = result.grad_xw, &c0 = args.state[1], &cells = args.saved_tensor(1);
    auto& grads = result.grad_weights;
    std::tie(grads[kWeightHH], grads[kBiasHH]) = recurrent_weight_grads(d_pre, args.state[0], args.output);
    if (d_proj.defined()) {  // dW_hr = sum_t dhp_t^T m_t, one GEMM over T * B rows
      grads[kWeightHR] = d_proj.reshape({-1, P}).t().mm(args.saved_tensor(2).reshape({-1, H}));
    }
    // Peepholes: sum over (T, B) of d(pre-activation) * the cell state it multiplied:
    // c_{t-1} for i and f, the new c_t for o.
    auto sum_times_previous_c = [&](int64_t block) {
      const Tensor da = d_pre.narrow(2, block * H, H);
      Tensor g = da[0].mul(c0).sum(0);
      if (steps > 1) g += da.narrow(0, 1, steps - 1).mul(cells.narrow(0, 0, steps - 1)).sum({0, 1});
      return g;
    };
    if (args.weights.has(kWeightCI)) grads[kWeightCI] = sum_times_previous_c(0);
    if (args.weights.has(kWeightCF)) grads[kWeightCF] = sum_times_previous_c(1);
    if (args.weights.has(kWeightCO)) grads[kWeightCO] = d_pre.narrow(2, 3 * H, H).mul(cells).sum({0, 1});
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::LSTM)
