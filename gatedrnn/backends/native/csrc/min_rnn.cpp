// minGRU and minLSTM (gatedrnn/min_rnn.py), forward and backward of a whole layer
// direction from its input projection xw, with no intermediate tensors:
//   minGRU,  blocks [k, k_h]:       z = sigmoid(k),  h_t = (1 - z) h_{t-1} + z g(k_h)
//   minLSTM, blocks [k_f, k_i, k_h]: f = sigmoid(k_f), i = sigmoid(k_i),
//                                    h_t = (f h_{t-1} + i g(k_h)) / (f + i)
// with g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0). Units are independent (the gates read
// x only), so each thread takes whole sequences through all T steps with no
// synchronisation: one read of xw and one write of h per element forward, one read of
// xw, h and grad_h and one write of grad_xw backward. Saved for backward: the output h only.
// A step whose gates keep the state exactly (minGRU k = -inf; minLSTM k_f = +inf,
// k_i = -inf) leaves h unchanged and gets zero gradients: that is how padding freezes.
#include "common.h"

namespace gatedrnn {
namespace {

template <typename T>
inline Vec<T> positive_g(const Vec<T>& x, const Vec<T>& sig) {
  return Vec<T>::blendv(sig, x + Vec<T>(T(0.5)), x >= Vec<T>(T(0)));
}

// g'(x): 1 for x >= 0, sigmoid'(x) below.
template <typename T>
inline Vec<T> positive_g_grad(const Vec<T>& x, const Vec<T>& sig) {
  return Vec<T>::blendv(sig * (Vec<T>(T(1)) - sig), Vec<T>(T(1)), x >= Vec<T>(T(0)));
}

struct MinGRU {
  static constexpr int kBlocks = 2;
  // h_t from h_{t-1} and the step's blocks x[0] = k, x[1] = k_h.
  template <typename T>
  static Vec<T> step(const Vec<T>* x, const Vec<T>& h) {
    const Vec<T> z = vsigmoid(x[0]);
    return h + z * (positive_g(x[1], vsigmoid(x[1])) - h);
  }
  // Fills dx[] (the gradients of the blocks) and returns dL/dh_{t-1}.
  template <typename T>
  static Vec<T> backward(const Vec<T>* x, const Vec<T>& h_prev, const Vec<T>& h, const Vec<T>& dh, Vec<T>* dx) {
    const Vec<T> one(T(1));
    const Vec<T> z = vsigmoid(x[0]), sig = vsigmoid(x[1]);
    const Vec<T> g = positive_g(x[1], sig);
    dx[0] = dh * (g - h_prev) * z * (one - z);
    dx[1] = dh * z * positive_g_grad(x[1], sig);
    return dh * (one - z);
  }
};

struct MinLSTM {
  static constexpr int kBlocks = 3;
  template <typename T>
  static Vec<T> step(const Vec<T>* x, const Vec<T>& h) {
    const Vec<T> f = vsigmoid(x[0]), i = vsigmoid(x[1]);
    return (f * h + i * positive_g(x[2], vsigmoid(x[2]))) / (f + i);
  }
  // h = (f h_prev + i g) / s, s = f + i: dh/df = (h_prev - h) / s, dh/di = (g - h) / s.
  template <typename T>
  static Vec<T> backward(const Vec<T>* x, const Vec<T>& h_prev, const Vec<T>& h, const Vec<T>& dh, Vec<T>* dx) {
    const Vec<T> one(T(1));
    const Vec<T> f = vsigmoid(x[0]), i = vsigmoid(x[1]), sig = vsigmoid(x[2]);
    const Vec<T> g = positive_g(x[2], sig);
    const Vec<T> scaled = dh / (f + i);
    dx[0] = scaled * (h_prev - h) * f * (one - f);
    dx[1] = scaled * (g - h) * i * (one - i);
    dx[2] = scaled * i * positive_g_grad(x[2], sig);
    return scaled * f;
  }
};

// Sequences per thread at least: below that, scheduling costs more than it saves.
constexpr int64_t kMinRowsPerThread = 4;

// Time is the outer loop and each step reads and writes whole contiguous rows: walking
// one vector of units through all steps instead strides through memory (measured 4x
// slower at T = 784, B = 100, H = 128).
template <typename Cell, typename T>
void forward_kernel(const T* xw, const T* h0, T* h, int64_t steps, int64_t batch, int64_t H) {
  constexpr int G = Cell::kBlocks;
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    Vec<T> x[G];
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * batch + b;
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;  // h_{t-1}, (H)
        const T* xt = xw + row * G * H;                               // (G*H)
        T* out = h + row * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) x[k] = vload(xt + k * H + j, n);
          vstore(Cell::step(x, vload(prev + j, n)), out + j, n);
        });
      }
    }
  });
}

template <typename Cell, typename T>
void backward_kernel(const T* grad_h, const T* xw, const T* h, const T* h0, T* grad_xw, T* grad_h0,
                     int64_t steps, int64_t batch, int64_t H) {
  constexpr int G = Cell::kBlocks;
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    // dL/dh_t of this thread's rows, carried backwards in time
    std::vector<T> carry((b1 - b0) * H, T(0));
    Vec<T> x[G], dx[G];
    for (int64_t t = steps - 1; t >= 0; --t) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * batch + b;
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;
        const T* xt = xw + row * G * H;
        T* dxt = grad_xw + row * G * H;
        T* c = carry.data() + (b - b0) * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) x[k] = vload(xt + k * H + j, n);
          const Vec<T> dh = vload(c + j, n) + vload(grad_h + row * H + j, n);
          vstore(Cell::backward(x, vload(prev + j, n), vload(h + row * H + j, n), dh, dx), c + j, n);
          for (int k = 0; k < G; ++k) vstore(dx[k], dxt + k * H + j, n);
        });
      }
    }
    std::copy(carry.begin(), carry.end(), grad_h0 + b0 * H);
  });
}

// The same kernels with the input projection inside (narrow inputs, I <= a few): each
// row's xw = b + x W^T is formed in a per-thread buffer from W^T (I, G*H), so neither xw
// nor its gradient is ever stored; the weight and bias gradients are summed per thread
// and then over the threads in order (deterministic for a given number of threads).
template <typename T>
inline void project_row(const T* x, const T* wt, const T* bias, int64_t I, int64_t GH, T* xw) {
  if (bias) std::copy(bias, bias + GH, xw); else std::fill(xw, xw + GH, T(0));
  for (int64_t i = 0; i < I; ++i) {
    const Vec<T> xi(x[i]);
    const T* w = wt + i * GH;
    vec_loop<T>(GH, [&](int64_t j, int64_t n) {
      vstore(at::vec::fmadd(xi, vload(w + j, n), vload(xw + j, n)), xw + j, n);
    });
  }
}

template <typename Cell, typename T>
void forward_input_kernel(const T* x, const T* wt, const T* bias, const T* h0, T* h, int64_t steps,
                          int64_t batch, int64_t I, int64_t H) {
  constexpr int G = Cell::kBlocks;
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    std::vector<T> xw(G * H);  // this row's W_ih x + b_ih
    Vec<T> xv[G];
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * batch + b;
        project_row(x + row * I, wt, bias, I, G * H, xw.data());
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) xv[k] = vload(xw.data() + k * H + j, n);
          vstore(Cell::step(xv, vload(prev + j, n)), h + row * H + j, n);
        });
      }
    }
  });
}

template <typename Cell, typename T>
void backward_input_kernel(const T* grad_h, const T* x, const T* wt, const T* bias, const T* h, const T* h0,
                           T* grad_x, T* grad_wt, T* grad_bias, T* grad_h0, int64_t steps, int64_t batch,
                           int64_t I, int64_t H) {
  constexpr int G = Cell::kBlocks;
  const int64_t GH = G * H;
  const int threads = at::get_num_threads();
  // per thread: dL/dW^T (I, G*H) and dL/db (G*H), summed in thread order after the loop
  std::vector<T> partial(threads * (I + 1) * GH, T(0));
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    T* grad_wt_mine = partial.data() + at::get_thread_num() * (I + 1) * GH;
    T* grad_bias_mine = grad_wt_mine + I * GH;
    std::vector<T> carry((b1 - b0) * H, T(0)), xw(GH), dxw(GH);
    Vec<T> xv[G], dx[G];
    for (int64_t t = steps - 1; t >= 0; --t) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = t * batch + b;
        const T* xr = x + row * I;
        project_row(xr, wt, bias, I, GH, xw.data());
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;
        T* c = carry.data() + (b - b0) * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) xv[k] = vload(xw.data() + k * H + j, n);
          const Vec<T> dh = vload(c + j, n) + vload(grad_h + row * H + j, n);
          vstore(Cell::backward(xv, vload(prev + j, n), vload(h + row * H + j, n), dh, dx), c + j, n);
          for (int k = 0; k < G; ++k) vstore(dx[k], dxw.data() + k * H + j, n);
        });
        // dL/db += dxw; dL/dW^T[i] += x_i dxw; dL/dx_i = dxw . W^T[i]
        vec_loop<T>(GH, [&](int64_t j, int64_t n) {
          vstore(vload(grad_bias_mine + j, n) + vload(dxw.data() + j, n), grad_bias_mine + j, n);
        });
        for (int64_t i = 0; i < I; ++i) {
          const Vec<T> xi(xr[i]);
          T* gw = grad_wt_mine + i * GH;
          const T* w = wt + i * GH;
          Vec<T> dot(T(0));
          vec_loop<T>(GH, [&](int64_t j, int64_t n) {
            const Vec<T> d = vload(dxw.data() + j, n);
            vstore(at::vec::fmadd(xi, d, vload(gw + j, n)), gw + j, n);
            dot = at::vec::fmadd(d, vload(w + j, n), dot);
          });
          T lanes[Vec<T>::size()];
          dot.store(lanes);
          grad_x[row * I + i] = std::accumulate(lanes, lanes + Vec<T>::size(), T(0));
        }
      }
    }
    std::copy(carry.begin(), carry.end(), grad_h0 + b0 * H);
  });
  std::fill(grad_wt, grad_wt + I * GH, T(0));
  if (grad_bias) std::fill(grad_bias, grad_bias + GH, T(0));
  for (int k = 0; k < threads; ++k) {
    const T* mine = partial.data() + k * (I + 1) * GH;
    for (int64_t j = 0; j < I * GH; ++j) grad_wt[j] += mine[j];
    if (grad_bias) for (int64_t j = 0; j < GH; ++j) grad_bias[j] += mine[I * GH + j];
  }
}

template <typename Cell>
Tensor min_rnn_forward(const Tensor& xw_in, const Tensor& h0_in) {
  TORCH_CHECK(xw_in.dim() == 3 && h0_in.dim() == 2 && xw_in.size(1) == h0_in.size(0) &&
                  xw_in.size(2) == Cell::kBlocks * h0_in.size(1),
              "gatedrnn min-RNN kernel: xw must be (T, B, G*H) for h0 (B, H)");
  const Tensor xw = xw_in.contiguous(), h0 = h0_in.contiguous();
  Tensor h = at::empty({xw.size(0), xw.size(1), h0.size(1)}, xw.options());
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "min_rnn_forward", [&] {
    forward_kernel<Cell, scalar_t>(xw.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                   xw.size(0), xw.size(1), h0.size(1));
  });
  return h;
}

template <typename Cell>
std::tuple<Tensor, Tensor> min_rnn_backward(const Tensor& grad_h_in, const Tensor& xw_in, const Tensor& h_in,
                                            const Tensor& h0_in) {
  const Tensor grad_h = grad_h_in.contiguous(), xw = xw_in.contiguous(), h = h_in.contiguous(),
               h0 = h0_in.contiguous();
  Tensor grad_xw = at::empty_like(xw), grad_h0 = at::empty_like(h0);
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "min_rnn_backward", [&] {
    backward_kernel<Cell, scalar_t>(grad_h.data_ptr<scalar_t>(), xw.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                    h0.data_ptr<scalar_t>(), grad_xw.data_ptr<scalar_t>(),
                                    grad_h0.data_ptr<scalar_t>(), xw.size(0), xw.size(1), h0.size(1));
  });
  return {grad_xw, grad_h0};
}

template <typename Cell>
Tensor min_rnn_forward_input(const Tensor& x_in, const Tensor& weight, const std::optional<Tensor>& bias_in,
                             const Tensor& h0_in) {
  TORCH_CHECK(x_in.dim() == 3 && weight.dim() == 2 && weight.size(1) == x_in.size(2) &&
                  weight.size(0) == Cell::kBlocks * h0_in.size(1) && h0_in.size(0) == x_in.size(1),
              "gatedrnn min-RNN kernel: x (T, B, I), weight (G*H, I), h0 (B, H) expected");
  const Tensor x = x_in.contiguous(), wt = weight.t().contiguous(), h0 = h0_in.contiguous();
  const std::optional<Tensor> bias = bias_in.has_value() ? std::optional<Tensor>(bias_in->contiguous()) : std::nullopt;
  Tensor h = at::empty({x.size(0), x.size(1), h0.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "min_rnn_forward_input", [&] {
    forward_input_kernel<Cell, scalar_t>(x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
                                         bias ? bias->data_ptr<scalar_t>() : nullptr, h0.data_ptr<scalar_t>(),
                                         h.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(2), h0.size(1));
  });
  return h;
}

template <typename Cell>
std::tuple<Tensor, Tensor, std::optional<Tensor>, Tensor> min_rnn_backward_input(
    const Tensor& grad_h_in, const Tensor& x_in, const Tensor& weight, const std::optional<Tensor>& bias_in,
    const Tensor& h_in, const Tensor& h0_in) {
  const Tensor grad_h = grad_h_in.contiguous(), x = x_in.contiguous(), wt = weight.t().contiguous(),
               h = h_in.contiguous(), h0 = h0_in.contiguous();
  const std::optional<Tensor> bias = bias_in.has_value() ? std::optional<Tensor>(bias_in->contiguous()) : std::nullopt;
  Tensor grad_x = at::empty_like(x), grad_wt = at::empty_like(wt), grad_h0 = at::empty_like(h0);
  std::optional<Tensor> grad_bias = bias ? std::optional<Tensor>(at::empty_like(*bias)) : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "min_rnn_backward_input", [&] {
    backward_input_kernel<Cell, scalar_t>(
        grad_h.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
        bias ? bias->data_ptr<scalar_t>() : nullptr, h.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(),
        grad_x.data_ptr<scalar_t>(), grad_wt.data_ptr<scalar_t>(), grad_bias ? grad_bias->data_ptr<scalar_t>() : nullptr,
        grad_h0.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(2), h0.size(1));
  });
  return {grad_x, grad_wt.t().contiguous(), grad_bias, grad_h0};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gatedrnn, m) {
  for (const char* cell : {"mingru", "minlstm"}) {
    m.def((std::string(cell) + "_forward(Tensor xw, Tensor h0) -> Tensor").c_str());
    m.def((std::string(cell) + "_backward(Tensor grad_h, Tensor xw, Tensor h, Tensor h0) -> (Tensor, Tensor)").c_str());
    m.def((std::string(cell) + "_forward_input(Tensor x, Tensor weight, Tensor? bias, Tensor h0) -> Tensor").c_str());
    m.def((std::string(cell) +
           "_backward_input(Tensor grad_h, Tensor x, Tensor weight, Tensor? bias, Tensor h, Tensor h0)"
           " -> (Tensor, Tensor, Tensor?, Tensor)").c_str());
  }
}

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("mingru_forward", &min_rnn_forward<MinGRU>);
  m.impl("mingru_backward", &min_rnn_backward<MinGRU>);
  m.impl("minlstm_forward", &min_rnn_forward<MinLSTM>);
  m.impl("minlstm_backward", &min_rnn_backward<MinLSTM>);
  m.impl("mingru_forward_input", &min_rnn_forward_input<MinGRU>);
  m.impl("mingru_backward_input", &min_rnn_backward_input<MinGRU>);
  m.impl("minlstm_forward_input", &min_rnn_forward_input<MinLSTM>);
  m.impl("minlstm_backward_input", &min_rnn_backward_input<MinLSTM>);
}

}  // namespace gatedrnn
