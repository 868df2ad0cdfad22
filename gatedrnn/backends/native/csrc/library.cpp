// The gatedrnn operator library: every cell defines two ops with one schema (<cell> is the
// cell's name with "-" as "_", an identifier: layernorm_lstm for "layernorm-lstm"),
//   <cell>_forward(xw, state, weights, slots, lengths, options, save) -> (output, final_state, saved)
//   <cell>_backward(grad_output, grad_final_state, xw, state, weights, slots, lengths, options,
//                   output, saved) -> (grad_xw, grad_state, grad_weights)
// weights are the layer's parameters that the kernel reads, slots their places in
// [weight_hh, bias_hh, weight_hr, weight_ci, weight_cf, weight_co, layernorm_hh_weight,
// layernorm_c_weight, layernorm_c_bias, weight_ih, bias_ih]; grad_weights follow the order
// of weights. With weight_ih among them (the minimal RNNs), xw is the layer's input x and
// the kernel forms W_ih x + b_ih itself; grad_xw is then the gradient of x. options are the
// cell's constants (see gatedrnn/backends/native/__init__.py). save=false (no gradient
// needed) saves nothing. The backward op receives xw: the minimal RNNs recompute their
// gates from it.
#include "common.h"

TORCH_LIBRARY(gatedrnn, m) {
  for (const char* cell : {"rnn", "lstm", "gru", "janet", "mgu", "indrnn", "layernorm_lstm", "mingru", "minlstm"}) {
    const std::string forward = std::string(cell) +
        "_forward(Tensor xw, Tensor[] state, Tensor[] weights, int[] slots, Tensor? lengths,"
        " float[] options, bool save) "
        " -> (Tensor, Tensor[], Tensor[])";
    const std::string backward = std::string(cell) +
        "_backward(Tensor grad_output, Tensor[] grad_state, Tensor xw, Tensor[] state,"
        " Tensor[] weights, int[] slots, Tensor? lengths, float[] options, Tensor output,"
        " Tensor[] saved) -> (Tensor, Tensor[], Tensor[])";
    m.def(forward.c_str());
    m.def(backward.c_str());
  }
}
