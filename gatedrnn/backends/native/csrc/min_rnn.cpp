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

}  // namespace

TORCH_LIBRARY_FRAGMENT(gatedrnn, m) {
  for (const char* cell : {"mingru", "minlstm"}) {
    m.def((std::string(cell) + "_forward(Tensor xw, Tensor h0) -> Tensor").c_str());
    m.def((std::string(cell) + "_backward(Tensor grad_h, Tensor xw, Tensor h, Tensor h0) -> (Tensor, Tensor)").c_str());
  }
}

TORCH_LIBRARY_IMPL(gatedrnn, CPU, m) {
  m.impl("mingru_forward", &min_rnn_forward<MinGRU>);
  m.impl("mingru_backward", &min_rnn_backward<MinGRU>);
  m.impl("minlstm_forward", &min_rnn_forward<MinLSTM>);
  m.impl("minlstm_backward", &min_rnn_backward<MinLSTM>);
}

}  // namespace gatedrnn
