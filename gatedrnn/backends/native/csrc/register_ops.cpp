// The op registration library: defines a cell's two ops in torch's `gatedrnn` library and
// registers its CPU kernels, for every cell's kernel library in turn (the native backend
// loads both and hands this one the other's gatedrnn_cell_kernels).
//
// The only translation unit that includes torch/library.h: parsing it and instantiating
// the dispatcher's boxing wrappers for the two op signatures costs about 6 s of compiling,
// paid once for all cells instead of once per cell (a kernel then compiles in about 4 s).
#include <torch/library.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "op_signatures.h"

namespace {

// Registrations last while their Library objects live: as long as the process.
std::vector<std::unique_ptr<torch::Library>> registrations;
std::mutex registering;  // ctypes releases the GIL: two threads may load cells at once
thread_local std::string last_error;

void register_cell(const gatedrnn::CellKernels& kernels) {
  const std::string cell = kernels.name;
  auto schema = std::make_unique<torch::Library>(torch::Library::FRAGMENT, "gatedrnn", std::nullopt,
                                                 __FILE__, __LINE__);
  schema->def((cell + "_forward(Tensor xw, Tensor[] state, Tensor[] weights, int[] slots, Tensor? lengths,"
                      " float[] options, bool save) -> (Tensor, Tensor[], Tensor[])").c_str());
  schema->def((cell + "_backward(Tensor grad_output, Tensor[] grad_state, Tensor xw, Tensor[] state,"
                      " Tensor[] weights, int[] slots, Tensor? lengths, float[] options, Tensor output,"
                      " Tensor[] saved) -> (Tensor, Tensor[], Tensor[])").c_str());
  auto cpu = std::make_unique<torch::Library>(torch::Library::IMPL, "gatedrnn", c10::DispatchKey::CPU,
                                              __FILE__, __LINE__);
  cpu->impl((cell + "_forward").c_str(), torch::CppFunction(kernels.forward));
  cpu->impl((cell + "_backward").c_str(), torch::CppFunction(kernels.backward));
  registrations.push_back(std::move(schema));
  registrations.push_back(std::move(cpu));
}

}  // namespace

// Registers the ops of the cell whose kernels `cell_kernels` returns. Returns null, or the
// error's message (valid until this thread's next call): no C++ exception crosses into
// the caller, a C function called through ctypes.
extern "C" const char* gatedrnn_register_cell(gatedrnn::CellKernels (*cell_kernels)()) {
  const std::lock_guard<std::mutex> lock(registering);
  try {
    register_cell(cell_kernels());
    return nullptr;
  } catch (const c10::Error& error) {
    last_error = error.what_without_backtrace();
  } catch (const std::exception& error) {
    last_error = error.what();
  }
  return last_error.c_str();
}
