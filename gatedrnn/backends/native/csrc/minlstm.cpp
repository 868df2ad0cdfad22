// minLSTM kernel (the loops: min_rnn.h), blocks [k_f, k_i, k_h]:
//   f = sigmoid(k_f), i = sigmoid(k_i),  h_t = (f h_{t-1} + i g(k_h)) / (f + i)
#include "min_rnn.h"

namespace gatedrnn {
namespace {

struct MinLSTM {
  static constexpr const char* kName = "minlstm";
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

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::MinRNN<gatedrnn::MinLSTM>)
