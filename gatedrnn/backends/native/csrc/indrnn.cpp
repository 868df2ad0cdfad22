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

// Calls f(b, j0, j1) for the pieces [j0, j1) of the flat (B, H) range [i0, i1) within each
// row b that step t reaches, and zeroes the pieces of the other rows in step_rows (B, H):
// past its length a sequence's outputs and gradients are zero and its state is kept.
template <typename T, typename F>
inline void for_valid_row_pieces(const Lengths& lengths, int64_t t, int64_t i0, int64_t i1, int64_t H,
                                 T* step_rows, F&& f) {
  for (int64_t b = i0 / H; b * H < i1; ++b) {
    const int64_t j0 = std::max<int64_t>(i0 - b * H, 0), j1 = std::min<int64_t>(i1 - b * H, H);
    if (lengths.valid(t, b)) f(b, j0, j1);
    else std::fill(step_rows + b * H + j0, step_rows + b * H + j1, T(0));
  }
}

struct IndRNN {
  static constexpr const char* kName = "indrnn";

  static std::vector<Tensor> saved(const ForwardArgs&) { return {}; }

  // A run's constants: relu or tanh (options[0]), and u clamped to [-recurrent_max,
  // recurrent_max] (options[1], +inf when unset), (H,).
  struct Recurrence {
    bool relu;
    Tensor u;
    explicit Recurrence(const ForwardArgs& args) : relu(args.options[0] != 0.0) {
      const Tensor& weight = args.weights[kWeightHH];
      TORCH_CHECK(weight.dim() == 1 && args.xw.size(2) == weight.size(0),
                  "gatedrnn: indrnn expects weight_hh of shape (H,) and xw of size H in its last dimension");
      u = weight.clamp(-args.options[1], args.options[1]);
    }
  };

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = result.output.size(2);
    const Recurrence rec(args);
    const T* x_all = args.xw.data_ptr<T>();        // (T, B, H)
    T* h = result.state[0].data_ptr<T>();          // (B, H)
    T* out = result.output.data_ptr<T>();          // (T, B, H)
    const T* u = rec.u.data_ptr<T>();            // (H,)
    const T* bias = args.weights.ptr<T>(kBiasHH);  // (H,) or null
    for_element_blocks(steps, batch * H, [&](int64_t i0, int64_t i1) {
      for (int64_t t = 0; t < steps; ++t) {
        for_valid_row_pieces(args.lengths, t, i0, i1, H, out + t * batch * H, [&](int64_t b, int64_t j0, int64_t j1) {
          const T* x = x_all + (t * batch + b) * H;
          T* hb = h + b * H;
          vec_loop<T>(j1 - j0, [&](int64_t k, int64_t n) {
            const int64_t j = j0 + k;
            store_activation(vload(x + j, n) + vload(u + j, n) * vload(hb + j, n), bias, j, n, rec.relu,
                             out + (t * batch + b) * H, hb);
          });
        });
      }
    });
  }

  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t steps = args.steps, batch = args.batch, H = args.output.size(2);
    const Recurrence rec(args);
    const T* gout = args.grad_output.data_ptr<T>();  // (T, B, H)
    T* dh = result.grad_state[0].data_ptr<T>();      // (B, H), dL/dh_t carried backwards
    T* da_all = result.grad_xw.data_ptr<T>();        // (T, B, H)
    const T* out = args.output.data_ptr<T>();
    const T* u = rec.u.data_ptr<T>();              // (H,)
    for_element_blocks(steps, batch * H, [&](int64_t i0, int64_t i1) {
      for (int64_t t = steps - 1; t >= 0; --t) {
        // frozen rows (past their length): the gradient passes through unchanged
        for_valid_row_pieces(args.lengths, t, i0, i1, H, da_all + t * batch * H, [&](int64_t b, int64_t j0, int64_t j1) {
          T* da = da_all + (t * batch + b) * H;
          const T* go = gout + (t * batch + b) * H;
          const T* hb = out + (t * batch + b) * H;
          T* dhb = dh + b * H;
          vec_loop<T>(j1 - j0, [&](int64_t k, int64_t n) {
            const int64_t j = j0 + k;
            const Vec<T> dav = (vload(dhb + j, n) + vload(go + j, n)) * activation_slope(vload(hb + j, n), rec.relu);
            vstore(dav, da + j, n);
            vstore(dav * vload(u + j, n), dhb + j, n);
          });
        });
      }
    });
    // d u = sum over steps and rows of da_t * h_{t-1}; past a length da is zero.
    const Tensor& d_pre = result.grad_xw;
    const Tensor& h0 = args.state[0];
    Tensor grad_u = d_pre[0].mul(h0).sum(0);  // (H,)
    if (steps > 1) grad_u += d_pre.narrow(0, 1, steps - 1).mul(args.output.narrow(0, 0, steps - 1)).sum({0, 1});
    // clamp passes the gradient inside the range only
    grad_u.masked_fill_(args.weights[kWeightHH].abs().gt(args.options[1]), 0);
    result.grad_weights[kWeightHH] = grad_u;
    result.grad_weights[kBiasHH] = d_pre.sum({0, 1});
  }
};

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::IndRNN)
