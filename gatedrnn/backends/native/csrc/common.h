// Shared pieces of the native kernels: BLAS calls, vectorised loops, batch partition.
//
// Every kernel runs the time loop of one layer and direction. Sequences in a batch
// are independent, so the batch is split across threads once for the whole sequence
// (at::parallel_for over rows): each thread runs its rows through all T steps with a
// single-threaded GEMM per step and no synchronisation between steps.
#pragma once

// Only what the kernels use: the Tensor class with its methods, the per-operator headers of
// the few functions they call, dispatch, threads, vectors and op registration (not
// torch/extension.h, which brings pybind11 and the whole C++ frontend: ~5x the compile time).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <tuple>
#include <vector>

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

// Gradients of the weights in the order the op received them.
inline std::vector<Tensor> in_slot_order(const std::array<Tensor, kNumSlots>& grads, at::IntArrayRef slots) {
  std::vector<Tensor> ordered;
  for (int64_t slot : slots) ordered.push_back(grads.at(slot));
  return ordered;
}

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
};

inline std::optional<Tensor> contiguous_lengths(const std::optional<Tensor>& lengths) {
  if (!lengths.has_value()) return std::nullopt;
  return lengths->to(at::kLong).contiguous();
}

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

}  // namespace gatedrnn
