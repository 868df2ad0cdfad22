// minGRU kernel (the loops: min_rnn.h), blocks [k, k_h]:
//   z = sigmoid(k),  h_t = (1 - z) h_{t-1} + z g(k_h)
#include "min_rnn.h"

namespace gatedrnn {
namespace {

struct MinGRU {
  static constexpr const char* kName = "mingru";
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

}  // namespace
}  // namespace gatedrnn

GATEDRNN_CELL_KERNELS(gatedrnn::MinRNN<gatedrnn::MinGRU>)
