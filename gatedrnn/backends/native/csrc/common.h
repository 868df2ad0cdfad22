// Shared pieces of the native kernels: the op boilerplate (schema, argument unpacking,
// dtype dispatch, registration) written once, BLAS calls, vectorised loops, batch partition.
//
// Every kernel runs the time loop of one layer and direction. Sequences in a batch
// are independent, so the batch is split across threads once for the whole sequence
// (at::parallel_for over rows): each thread runs its rows through all T steps with a
// single-threaded GEMM per step and no synchronisation between steps.
//
// A cell's file holds only its loops, as a struct handed over with GATEDRNN_CELL_KERNELS
// (see "The ops" below); each cell is compiled on its own (gatedrnn/backends/native/build.py).
#pragma once

// Only what the kernels use: the Tensor class with its methods (allocation too, as
// Tensor::new_empty), threads and vectors. Not torch/extension.h (pybind11 and torch's C++
// frontend), not the at::empty / at::cat headers (1.7 s of parsing per kernel), not
// torch/library.h: the ops are defined and registered by register_ops.cpp, compiled once
// for every cell.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "op_signatures.h"

// Fortran BLAS, exported by the BLAS that torch's CPU build links (MKL on x86-64).
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}

namespace gatedrnn {

using at::Tensor;

// Uninitialised tensors with `like`'s dtype and device: shaped as `like` (which is
// contiguous wherever the kernels call this), or `sizes`.
inline Tensor empty_like(const Tensor& like) { return like.new_empty(like.sizes()); }
inline Tensor empty(at::IntArrayRef sizes, const Tensor& like) { return like.new_empty(sizes); }
// at::cat({top, bottom}, 0) with Tensor methods only: top's rows, then bottom's.
inline Tensor concat_rows(const Tensor& top, const Tensor& bottom) {
  std::vector<int64_t> sizes = top.sizes().vec();
  sizes[0] += bottom.size(0);
  Tensor out = top.new_empty(sizes);
  out.narrow(0, 0, top.size(0)).copy_(top);
  out.narrow(0, top.size(0), bottom.size(0)).copy_(bottom);
  return out;
}

// The weights by slot (gatedrnn/backends/native/__init__.py, SLOT_NAMES): the recurrent ones
// (gatedrnn/parameters.py, RECURRENT_NAMES) weight_hh, bias_hh, weight_hr, weight_ci,
// weight_cf, weight_co, layernorm_hh_weight, layernorm_c_weight, layernorm_c_bias; then the
// input projection weight_ih, bias_ih, for the kernels that form W_ih x + b_ih themselves.
enum Slot {
  kWeightHH = 0, kBiasHH, kWeightHR, kWeightCI, kWeightCF, kWeightCO,
  kLayerNormHH, kLayerNormCW, kLayerNormCB, kWeightIH, kBiasIH, kNumSlots
};

struct Weights {
  std::array<std::optional<Tensor>, kNumSlots> by_slot;
  Weights(at::TensorList weights, at::IntArrayRef slots) {
    TORCH_CHECK(weights.size() == slots.size(), "gatedrnn: weights and slots differ in length");
    for (size_t i = 0; i < weights.size(); ++i) by_slot.at(slots[i]) = weights[i].contiguous();
  }
  bool has(Slot s) const { return by_slot[s].has_value(); }
  const Tensor& operator[](Slot s) const { return by_slot[s].value(); }
  template <typename T>
  const T* ptr(Slot s) const { return has(s) ? by_slot[s]->template data_ptr<T>() : nullptr; }
};

inline void blas_gemm(const char* ta, const char* tb, int m, int n, int k, float alpha, const float* a,
                      int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  sgemm_(ta, tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void blas_gemm(const char* ta, const char* tb, int m, int n, int k, double alpha, const double* a,
                      int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  dgemm_(ta, tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

template <typename T>
using Vec = at::vec::Vectorized<T>;

// A single sequence (M = 1) makes each step a matrix-vector product, where a BLAS call
// costs more than the arithmetic (it re-packs W every time): these loops read W once.
// Splits [0, n) over threads when a product is large enough (work = multiply-adds) and
// the caller is not itself one thread of a parallel region; else runs it inline.
template <typename F>
inline void parallel_columns(int64_t n, int64_t work, F&& body) {
  constexpr int64_t kMinWorkPerThread = 32 * 1024;
  if (work < 2 * kMinWorkPerThread || at::in_parallel_region()) return body(0, n);
  at::parallel_for(0, n, std::max<int64_t>(1, n * kMinWorkPerThread / work), body);
}

// y (N) = beta * y + W (N x K, row-major) @ x (K): one dot product per row of W.
template <typename T>
inline void gemv_w_x(int64_t N, int64_t K, const T* W, int64_t ldw, const T* x, T* y, T beta) {
  constexpr int64_t width = Vec<T>::size();
  parallel_columns(N, N * K, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* row = W + n * ldw;
      Vec<T> acc(T(0));
      int64_t k = 0;
      for (; k + width <= K; k += width) acc = at::vec::fmadd(Vec<T>::loadu(row + k), Vec<T>::loadu(x + k), acc);
      T lanes[width];
      acc.store(lanes);
      T sum = std::accumulate(lanes, lanes + width, T(0));
      for (; k < K; ++k) sum += row[k] * x[k];
      y[n] = beta == T(0) ? sum : beta * y[n] + sum;
    }
  });
}

// y (N) = beta * y + x (K) @ W (K x N, row-major): rows of W scaled and added.
template <typename T>
inline void gemv_x_w(int64_t N, int64_t K, const T* x, const T* W, int64_t ldw, T* y, T beta) {
  constexpr int64_t width = Vec<T>::size();
  parallel_columns(N, N * K, [&](int64_t n0, int64_t n1) {
    if (beta == T(0)) std::fill(y + n0, y + n1, T(0));
    else if (beta != T(1)) for (int64_t n = n0; n < n1; ++n) y[n] *= beta;
    for (int64_t k = 0; k < K; ++k) {
      const T* row = W + k * ldw;
      const Vec<T> scale(x[k]);
      int64_t n = n0;
      for (; n + width <= n1; n += width) at::vec::fmadd(scale, Vec<T>::loadu(row + n), Vec<T>::loadu(y + n)).store(y + n);
      for (; n < n1; ++n) y[n] += x[k] * row[n];
    }
  });
}

// Row-major C (M x N) = beta * C + A (M x K) @ W^T, W stored row-major as (N x K).
// (Column-major BLAS sees C^T = W A^T.) Single-threaded inside a parallel region.
template <typename T>
inline void gemm_a_wt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                      T* C, int64_t ldc, T beta) {
  if (M == 0 || N == 0) return;
  if (M == 1) return gemv_w_x<T>(N, K, W, ldw, A, C, beta);
  blas_gemm("T", "N", (int)N, (int)M, (int)K, T(1), W, (int)ldw, A, (int)lda, beta, C, (int)ldc);
}

// Row-major C (M x N) = beta * C + A (M x K) @ W, W stored row-major as (K x N).
template <typename T>
inline void gemm_a_w(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw,
                     T* C, int64_t ldc, T beta) {
  if (M == 0 || N == 0) return;
  if (M == 1) return gemv_x_w<T>(N, K, A, W, ldw, C, beta);
  blas_gemm("N", "N", (int)N, (int)M, (int)K, T(1), W, (int)ldw, A, (int)lda, beta, C, (int)ldc);
}

// Calls f(offset, count) over [0, n) in vector-width pieces; the last may be partial.
template <typename T, typename F>
inline void vec_loop(int64_t n, F&& f) {
  constexpr int64_t width = Vec<T>::size();
  int64_t j = 0;
  for (; j + width <= n; j += width) f(j, width);
  if (j < n) f(j, n - j);
}

template <typename T>
inline Vec<T> vload(const T* p, int64_t count) {
  return count == Vec<T>::size() ? Vec<T>::loadu(p) : Vec<T>::loadu(p, count);
}

template <typename T>
inline void vstore(const Vec<T>& v, T* p, int64_t count) {
  if (count == Vec<T>::size()) v.store(p); else v.store(p, count);
}

template <typename T>
inline Vec<T> vsigmoid(const Vec<T>& x) {
  return (Vec<T>(T(1)) + x.neg().exp()).reciprocal();
}

// tanh x = 1 - 2 / (exp(2x) + 1): one exp instead of Sleef's slower tanh. Absolute
// error of a few ulp of 1 in float32; float64 keeps the exact library tanh.
inline Vec<float> vtanh(const Vec<float>& x) {
  const Vec<float> one(1.0f), two(2.0f);
  return one - two / ((x * two).exp() + one);
}
inline Vec<double> vtanh(const Vec<double>& x) { return x.tanh(); }

// Runs body(b0, b1) over batch rows, one contiguous block per thread. BLAS re-packs the
// weights in every call whatever the rows, so a thread pays off only from about 32 rows
// (measured: B = 32, H = 64 ran faster on one thread than on two).
template <typename F>
inline void for_batch_blocks(int64_t batch, F&& body) {
  constexpr int64_t kMinRowsPerThread = 32;
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), batch / kMinRowsPerThread));
  const int64_t grain = (batch + threads - 1) / threads;
  at::parallel_for(0, batch, grain, body);
}

// valid(t, b): step t of sequence b is within its length (always true without lengths).
struct Lengths {
  const int64_t* data = nullptr;
  explicit Lengths(const std::optional<Tensor>& lengths)
      : data(lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr) {}
  bool valid(int64_t t, int64_t b) const { return data == nullptr || t < data[b]; }
  // The number of valid steps of sequence b out of `steps`.
  int64_t count(int64_t b, int64_t steps) const { return data == nullptr ? steps : std::min(data[b], steps); }
  // Calls body(b) for the rows b in [b0, b1) that step t reaches and zeroes the `width`
  // values of each other row in `rows` (row b at rows + (b - b0) * width): past its length
  // a sequence's outputs and gradients are zero and its state is left as it was.
  template <typename T, typename F>
  void for_valid_rows(int64_t t, int64_t b0, int64_t b1, T* rows, int64_t width, F&& body) const {
    for (int64_t b = b0; b < b1; ++b) {
      if (valid(t, b)) body(b);
      else std::fill(rows + (b - b0) * width, rows + (b - b0 + 1) * width, T(0));
    }
  }
};

// h_{t-1} for every step: h0 at t = 0, else output[t-1] (the state of every valid step).
template <typename T>
inline const T* previous_h(int64_t t, const T* h0, const T* output, int64_t step_stride) {
  return t == 0 ? h0 : output + (t - 1) * step_stride;
}

// Sum over (T, B) of the per-step gradients of the recurrent pre-activations (T, B, N),
// and the weight gradient d_pre^T @ [h0; output[:-1]] as two large multithreaded GEMMs.
inline std::pair<Tensor, Tensor> recurrent_weight_grads(const Tensor& d_pre, const Tensor& h0,
                                                        const Tensor& inputs_after_first) {
  const int64_t T = d_pre.size(0);
  Tensor grad_w = d_pre[0].t().mm(h0);  // (N, K)
  if (T > 1) {
    grad_w.addmm_(d_pre.narrow(0, 1, T - 1).reshape({-1, d_pre.size(2)}).t(),
                  inputs_after_first.narrow(0, 0, T - 1).reshape({-1, h0.size(1)}));
  }
  return {grad_w, d_pre.sum({0, 1})};
}

// a + x (+ bias, where it is not null) at the units offset ... offset + n: a recurrent
// product, the input projection and the bias, summed in that order.
template <typename T>
inline Vec<T> preactivation(const T* a, const T* x, const T* bias, int64_t offset, int64_t n) {
  const Vec<T> sum = vload(a + offset, n) + vload(x + offset, n);
  return bias ? sum + vload(bias + offset, n) : sum;
}

// act(a) for the RNN and IndRNN: relu or tanh.
template <typename T>
inline Vec<T> activation(const Vec<T>& a, bool relu) {
  return relu ? at::vec::clamp_min(a, Vec<T>(T(0))) : vtanh(a);
}

// h' = act(a + bias) (bias: null or the bias of units j...) into h and out at unit j.
template <typename T>
inline void store_activation(Vec<T> a, const T* bias, int64_t j, int64_t n, bool relu, T* out, T* h) {
  if (bias) a = a + vload(bias + j, n);
  const Vec<T> h_new = activation(a, relu);
  vstore(h_new, out + j, n);
  vstore(h_new, h + j, n);
}

// act'(a) from h' = act(a): relu passes where a > 0, i.e. where h' > 0; tanh' = 1 - h'^2.
template <typename T>
inline Vec<T> activation_slope(const Vec<T>& h_new, bool relu) {
  const Vec<T> zero(T(0)), one(T(1));
  return relu ? Vec<T>::blendv(zero, one, h_new > zero) : one - h_new * h_new;
}

// ---- The ops ---------------------------------------------------------------------------
//
// Every cell defines two ops with one schema, <cell>_forward and <cell>_backward (see
// register_ops.cpp and gatedrnn/backends/native/__init__.py). A cell is a struct with
//   static constexpr const char* kName;        the ops' prefix, e.g. "janet"
//   static std::vector<Tensor> saved(const ForwardArgs&);
//                                              what forward keeps for backward (when saving)
//   template <typename T> static void forward(const ForwardArgs&, ForwardResult&);
//   template <typename T> static void backward(const BackwardArgs&, BackwardResult&);
// handed over with GATEDRNN_CELL_KERNELS(Cell). forward and backward fill the result's
// tensors, allocated here; T is float or double.

// The forward op's arguments as the kernels read them: contiguous, weights by slot.
struct ForwardArgs {
  Tensor xw;                     // (T, B, G*H); x (T, B, I) for a kernel given weight_ih
  std::vector<Tensor> state;     // the initial state: h (B, P) first, then c (B, H)
  Weights weights;
  std::optional<Tensor> lengths_tensor;
  Lengths lengths;
  at::ArrayRef<double> options;  // the cell's constants (CellSpec.kernel_options)
  int64_t steps, batch;
  ForwardArgs(const Tensor& xw_in, at::TensorList state_in, at::TensorList weight_list, at::IntArrayRef slots,
              const std::optional<Tensor>& lengths_in, at::ArrayRef<double> options_in)
      : xw(xw_in.contiguous()), weights(weight_list, slots),
        lengths_tensor(lengths_in.has_value() ? std::optional<Tensor>(lengths_in->to(at::kLong).contiguous())
                                              : std::nullopt),
        lengths(lengths_tensor), options(options_in), steps(xw.size(0)), batch(xw.size(1)) {
    TORCH_CHECK(xw.dim() == 3 && !state_in.empty(), "gatedrnn: xw must be (T, B, features) and state non-empty");
    for (const Tensor& s : state_in) {
      TORCH_CHECK(s.dim() == 2 && s.size(0) == batch && s.scalar_type() == xw.scalar_type(),
                  "gatedrnn: every state tensor must be (B, features) with B = ", batch, " and xw's dtype");
      state.push_back(s.contiguous());
    }
  }
};

// The forward op's results: the output (T, B, P) and the final state, a copy of the initial
// state that the kernel updates in place; `saved` holds Cell::saved(args) when saving.
struct ForwardResult {
  Tensor output;
  std::vector<Tensor> state;
  std::vector<Tensor> saved;
  ForwardResult(const ForwardArgs& args, std::vector<Tensor> saved_buffers)
      : output(empty({args.steps, args.batch, args.state[0].size(1)}, args.xw)),
        saved(std::move(saved_buffers)) {
    for (const Tensor& s : args.state) state.push_back(s.clone());
    // The kernels skip the steps past each length: their saved rows would be whatever the
    // memory held, and an op's outputs must be deterministic.
    if (args.lengths_tensor.has_value()) for (Tensor& s : saved) s.zero_();
  }
  // Saved buffer k, or an undefined tensor when it is not saved.
  Tensor saved_or_none(size_t k) const { return k < saved.size() ? saved[k] : Tensor(); }
};

// The backward op's arguments: forward's, contiguous, with the output's gradient
// (T, B, P) and what forward returned (the output and the saved buffers).
struct BackwardArgs : ForwardArgs {
  Tensor grad_output, output;
  std::vector<Tensor> saved;
  BackwardArgs(const Tensor& grad_output_in, const Tensor& xw_in, at::TensorList state_in,
               at::TensorList weight_list, at::IntArrayRef slots, const std::optional<Tensor>& lengths_in,
               at::ArrayRef<double> options_in, const Tensor& output_in, at::TensorList saved_in)
      : ForwardArgs(xw_in, state_in, weight_list, slots, lengths_in, options_in),
        grad_output(grad_output_in.contiguous()), output(output_in.contiguous()) {
    for (const Tensor& s : saved_in) saved.push_back(s.contiguous());
  }
  // Saved tensor k of forward's list; an error (not a crash) where forward saved nothing.
  const Tensor& saved_tensor(size_t k) const {
    TORCH_CHECK(k < saved.size(), "gatedrnn: the backward op needs the tensors its forward op saves "
                "(forward with save=True); got ", saved.size(), " saved tensors");
    return saved[k];
  }
};

// The backward op's results: the gradient of xw (shape of xw), that of the state, a copy of
// the final state's gradient that the kernel carries back in place to the initial state's,
// and the weights' by slot (those the op received are returned, in its order).
struct BackwardResult {
  Tensor grad_xw;
  std::vector<Tensor> grad_state;
  std::array<Tensor, kNumSlots> grad_weights;
  BackwardResult(const BackwardArgs& args, at::TensorList grad_state_in) : grad_xw(empty_like(args.xw)) {
    for (const Tensor& g : grad_state_in) grad_state.push_back(g.contiguous().clone());
  }
};

// Calls f(T()) with T the C++ type of `t`'s dtype, float or double.
template <typename F>
inline void dispatch_floating(const Tensor& t, const char* op, F&& f) {
  switch (t.scalar_type()) {
    case at::kFloat: return f(float());
    case at::kDouble: return f(double());
    default: TORCH_CHECK(false, "gatedrnn::", op, ": expected float32 or float64 tensors, got ", t.scalar_type());
  }
}

template <typename Cell>
OpResult forward_op(const Tensor& xw, at::TensorList state, at::TensorList weights, at::IntArrayRef slots,
                    const std::optional<Tensor>& lengths, at::ArrayRef<double> options, bool save) {
  const ForwardArgs args(xw, state, weights, slots, lengths, options);
  ForwardResult result(args, save ? Cell::saved(args) : std::vector<Tensor>{});
  dispatch_floating(args.xw, Cell::kName, [&](auto zero) { Cell::template forward<decltype(zero)>(args, result); });
  return {result.output, result.state, result.saved};
}

template <typename Cell>
OpResult backward_op(const Tensor& grad_output, at::TensorList grad_state, const Tensor& xw, at::TensorList state,
                     at::TensorList weights, at::IntArrayRef slots, const std::optional<Tensor>& lengths,
                     at::ArrayRef<double> options, const Tensor& output, at::TensorList saved) {
  const BackwardArgs args(grad_output, xw, state, weights, slots, lengths, options, output, saved);
  BackwardResult result(args, grad_state);
  dispatch_floating(args.xw, Cell::kName, [&](auto zero) { Cell::template backward<decltype(zero)>(args, result); });
  std::vector<Tensor> grad_weights;
  for (int64_t slot : slots) grad_weights.push_back(result.grad_weights.at(slot));
  return {result.grad_xw, result.grad_state, grad_weights};
}

}  // namespace gatedrnn

// Exports the kernels of `Cell` for the op registration library (register_ops.cpp), which
// defines and registers the cell's ops when the backend loads this library; once per
// kernel file, at file scope.
#define GATEDRNN_CELL_KERNELS(Cell)                                                        \
  extern "C" ::gatedrnn::CellKernels gatedrnn_cell_kernels() {                             \
    return {Cell::kName, &::gatedrnn::forward_op<Cell>, &::gatedrnn::backward_op<Cell>};   \
  }
