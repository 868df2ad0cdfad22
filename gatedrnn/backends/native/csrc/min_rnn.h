// minGRU and minLSTM (gatedrnn/min_rnn.py), forward and backward of a whole layer
// direction, with no intermediate tensors (the cells' math: mingru.cpp, minlstm.cpp):
//   minGRU,  blocks [k, k_h]:       z = sigmoid(k),  h_t = (1 - z) h_{t-1} + z g(k_h)
//   minLSTM, blocks [k_f, k_i, k_h]: f = sigmoid(k_f), i = sigmoid(k_i),
//                                    h_t = (f h_{t-1} + i g(k_h)) / (f + i)
// with g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0). Units are independent (the gates read
// x only), so each thread takes whole sequences through all T steps with no
// synchronisation: one read of xw and one write of h per element forward, one read of
// xw, h and grad_h and one write of grad_xw backward. Nothing is saved for backward beyond
// the output h: the gates are recomputed from xw. Past its length a sequence's state is
// frozen, its output zero and its gradients zero, as in the other kernels.
// For narrow inputs (weight_ih among the weights) xw is the layer's input x (T, B, I) and
// each row's W_ih x + b_ih is formed in a per-thread buffer from W_ih^T (I, G*H), so
// neither the (T, B, G*H) projection nor its gradient is ever stored; the weight and bias
// gradients are summed per thread and then over the threads in order (deterministic for a
// given number of threads).
#pragma once

#include "common.h"

namespace gatedrnn {

template <typename T>
inline Vec<T> positive_g(const Vec<T>& x, const Vec<T>& sig) {
  return Vec<T>::blendv(sig, x + Vec<T>(T(0.5)), x >= Vec<T>(T(0)));
}

// g'(x): 1 for x >= 0, sigmoid'(x) below.
template <typename T>
inline Vec<T> positive_g_grad(const Vec<T>& x, const Vec<T>& sig) {
  return Vec<T>::blendv(sig * (Vec<T>(T(1)) - sig), Vec<T>(T(1)), x >= Vec<T>(T(0)));
}

// Sequences per thread at least: below that, scheduling costs more than it saves.
constexpr int64_t kMinRowsPerThread = 4;

// b (G*H) + x (I) W^T, W^T stored row-major as (I, G*H), into xw.
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

// The kernel's input: xw (T, B, G*H) itself, or x (T, B, I) with the projection W_ih^T
// (I, G*H) and b_ih (G*H, or null) applied row by row.
template <typename T>
struct Input {
  const T* data;
  const T* wt;
  const T* bias;
  int64_t I, GH;
  bool projected() const { return wt != nullptr; }
  // The G*H pre-activations of row `row` (t * B + b); buf holds G*H values.
  const T* row(int64_t r, T* buf) const {
    if (!wt) return data + r * GH;
    project_row(data + r * I, wt, bias, I, GH, buf);
    return buf;
  }
};

// Time is the outer loop and each step reads and writes whole contiguous rows: walking
// one vector of units through all steps instead strides through memory (measured 4x
// slower at T = 784, B = 100, H = 128).
template <typename Cell, typename T>
void forward_kernel(const Input<T>& in, const T* h0, T* h, T* h_n, const Lengths& lengths, int64_t steps,
                    int64_t batch, int64_t H) {
  constexpr int G = Cell::kBlocks;
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    std::vector<T> buf(in.projected() ? G * H : 0);  // this row's W_ih x + b_ih
    Vec<T> x[G];
    for (int64_t t = 0; t < steps; ++t) {
      lengths.for_valid_rows(t, b0, b1, h + (t * batch + b0) * H, H, [&](int64_t b) {
        const int64_t row = t * batch + b;
        T* out = h + row * H;
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;  // h_{t-1}, (H): a valid step
        const T* xt = in.row(row, buf.data());                       // (G*H)
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) x[k] = vload(xt + k * H + j, n);
          vstore(Cell::step(x, vload(prev + j, n)), out + j, n);
        });
      });
    }
    for (int64_t b = b0; b < b1; ++b) {  // the state after each sequence's last valid step
      const int64_t last = lengths.count(b, steps);
      const T* src = last == 0 ? h0 + b * H : h + ((last - 1) * batch + b) * H;
      std::copy(src, src + H, h_n + b * H);
    }
  });
}

// grad_h0 holds dL/dh_T on entry (carried backwards in place) and dL/dh_0 on return.
// grad_in: the gradient of xw (T, B, G*H), or with the projection inside that of x
// (T, B, I), with grad_wt (I, G*H) and grad_bias (G*H, or null).
template <typename Cell, typename T>
void backward_kernel(const Input<T>& in, const T* grad_h, const T* h, const T* h0, T* grad_h0, T* grad_in,
                     T* grad_wt, T* grad_bias, const Lengths& lengths, int64_t steps, int64_t batch, int64_t H) {
  constexpr int G = Cell::kBlocks;
  const int64_t GH = G * H, I = in.I;
  const int threads = in.projected() ? at::get_num_threads() : 0;
  // per thread: dL/dW^T (I, G*H) and dL/db (G*H), summed in thread order after the loop
  std::vector<T> partial(threads * (I + 1) * GH, T(0));
  at::parallel_for(0, batch, kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    T* grad_wt_mine = in.projected() ? partial.data() + at::get_thread_num() * (I + 1) * GH : nullptr;
    T* grad_bias_mine = in.projected() ? grad_wt_mine + I * GH : nullptr;
    std::vector<T> buf(in.projected() ? GH : 0), dbuf(in.projected() ? GH : 0);
    Vec<T> x[G], dx[G];
    for (int64_t t = steps - 1; t >= 0; --t) {
      // frozen rows (past their length): the gradient passes through unchanged
      const int64_t width = in.projected() ? I : GH;  // of grad_in's rows
      lengths.for_valid_rows(t, b0, b1, grad_in + (t * batch + b0) * width, width, [&](int64_t b) {
        const int64_t row = t * batch + b;
        T* dxt = in.projected() ? dbuf.data() : grad_in + row * GH;  // (G*H)
        const T* prev = t == 0 ? h0 + b * H : h + (row - batch) * H;
        const T* xt = in.row(row, buf.data());
        T* c = grad_h0 + b * H;
        vec_loop<T>(H, [&](int64_t j, int64_t n) {
          for (int k = 0; k < G; ++k) x[k] = vload(xt + k * H + j, n);
          const Vec<T> dh = vload(c + j, n) + vload(grad_h + row * H + j, n);
          vstore(Cell::backward(x, vload(prev + j, n), vload(h + row * H + j, n), dh, dx), c + j, n);
          for (int k = 0; k < G; ++k) vstore(dx[k], dxt + k * H + j, n);
        });
        if (!in.projected()) return;
        // dL/db += dxw; dL/dW^T[i] += x_i dxw; dL/dx_i = dxw . W^T[i]
        vec_loop<T>(GH, [&](int64_t j, int64_t n) {
          vstore(vload(grad_bias_mine + j, n) + vload(dxt + j, n), grad_bias_mine + j, n);
        });
        const T* xr = in.data + row * I;
        for (int64_t i = 0; i < I; ++i) {
          const Vec<T> xi(xr[i]);
          T* gw = grad_wt_mine + i * GH;
          const T* w = in.wt + i * GH;
          Vec<T> dot(T(0));
          vec_loop<T>(GH, [&](int64_t j, int64_t n) {
            const Vec<T> d = vload(dxt + j, n);
            vstore(at::vec::fmadd(xi, d, vload(gw + j, n)), gw + j, n);
            dot = at::vec::fmadd(d, vload(w + j, n), dot);
          });
          T lanes[Vec<T>::size()];
          dot.store(lanes);
          grad_in[row * I + i] = std::accumulate(lanes, lanes + Vec<T>::size(), T(0));
        }
      });
    }
  });
  if (!in.projected()) return;
  std::fill(grad_wt, grad_wt + I * GH, T(0));
  if (grad_bias) std::fill(grad_bias, grad_bias + GH, T(0));
  for (int k = 0; k < threads; ++k) {
    const T* mine = partial.data() + k * (I + 1) * GH;
    for (int64_t j = 0; j < I * GH; ++j) grad_wt[j] += mine[j];
    if (grad_bias) for (int64_t j = 0; j < GH; ++j) grad_bias[j] += mine[I * GH + j];
  }
}

// The op's input as the kernels read it: xw itself, or x with W_ih transposed once per call.
struct InputTensors {
  Tensor data, wt, bias;
  int64_t GH;
  InputTensors(const ForwardArgs& args, int64_t gh) : data(args.xw), GH(gh) {
    if (args.weights.has(kWeightIH)) {
      const Tensor& w = args.weights[kWeightIH];
      TORCH_CHECK(w.dim() == 2 && w.size(0) == GH && w.size(1) == data.size(2),
                  "gatedrnn min-RNN kernel: weight_ih must be (G*H, I) = (", GH, ", ", data.size(2), ")");
      wt = w.t().contiguous();
      if (args.weights.has(kBiasIH)) bias = args.weights[kBiasIH];
    }
    TORCH_CHECK(wt.defined() || data.size(2) == GH,
                "gatedrnn min-RNN kernel: xw must be (T, B, G*H) with G*H = ", GH, ", or x (T, B, I) with weight_ih");
  }
  template <typename T>
  Input<T> get() const {
    return {data.data_ptr<T>(), wt.defined() ? wt.data_ptr<T>() : nullptr,
            bias.defined() ? bias.data_ptr<T>() : nullptr, wt.defined() ? data.size(2) : 0, GH};
  }
};

// A minimal RNN's ops from its Math (kName, kBlocks, step, backward); nothing is saved.
template <typename Math>
struct MinRNN {
  static constexpr const char* kName = Math::kName;

  static std::vector<Tensor> saved(const ForwardArgs&) { return {}; }

  template <typename T>
  static void forward(const ForwardArgs& args, ForwardResult& result) {
    const int64_t H = result.output.size(2);
    const InputTensors input(args, Math::kBlocks * H);
    forward_kernel<Math, T>(input.get<T>(), args.state[0].data_ptr<T>(), result.output.data_ptr<T>(),
                            result.state[0].data_ptr<T>(), args.lengths, args.steps, args.batch, H);
  }

  template <typename T>
  static void backward(const BackwardArgs& args, BackwardResult& result) {
    const int64_t H = args.output.size(2);
    const InputTensors input(args, Math::kBlocks * H);
    const Tensor grad_wt = input.wt.defined() ? empty_like(input.wt) : Tensor();
    const Tensor grad_bias = input.bias.defined() ? empty_like(input.bias) : Tensor();
    backward_kernel<Math, T>(input.get<T>(), args.grad_output.data_ptr<T>(), args.output.data_ptr<T>(),
                             args.state[0].data_ptr<T>(), result.grad_state[0].data_ptr<T>(),
                             result.grad_xw.data_ptr<T>(), grad_wt.defined() ? grad_wt.data_ptr<T>() : nullptr,
                             grad_bias.defined() ? grad_bias.data_ptr<T>() : nullptr, args.lengths, args.steps,
                             args.batch, H);
    if (grad_wt.defined()) result.grad_weights[kWeightIH] = grad_wt.t().contiguous();
    result.grad_weights[kBiasIH] = grad_bias;
  }
};

}  // namespace gatedrnn
