// The C++ signatures of every cell's two ops, shared by the kernel libraries (common.h) and
// the op registration library (register_ops.cpp), and what a kernel library hands over.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

namespace gatedrnn {

// (output or grad_xw, final state or grad_state, saved buffers or grad_weights)
using OpResult = std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

// <cell>_forward(xw, state, weights, slots, lengths, options, save)
using ForwardKernel = OpResult (*)(const at::Tensor&, at::TensorList, at::TensorList, at::IntArrayRef,
                                   const std::optional<at::Tensor>&, at::ArrayRef<double>, bool);
// <cell>_backward(grad_output, grad_state, xw, state, weights, slots, lengths, options, output, saved)
using BackwardKernel = OpResult (*)(const at::Tensor&, at::TensorList, const at::Tensor&, at::TensorList,
                                    at::TensorList, at::IntArrayRef, const std::optional<at::Tensor>&,
                                    at::ArrayRef<double>, const at::Tensor&, at::TensorList);

// A cell's ops' prefix (e.g. "janet") and CPU kernels.
struct CellKernels {
  const char* name;
  ForwardKernel forward;
  BackwardKernel backward;
};

}  // namespace gatedrnn
