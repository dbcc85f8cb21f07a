#include "dlwpt/weights/reference_case.h"

#include <algorithm>
#include <filesystem>

#include <torch/script.h>

namespace dlwpt::weights {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIoSuffix = ".io.pt";

// The traced model's outputs: a tensor, or a tuple named in the model's order.
NamedOutputs run_traced(torch::jit::Module& traced, const std::string& python_class,
                        const torch::Tensor& input) {
  const auto names = output_names(python_class);
  const torch::IValue result = traced.forward({input});
  NamedOutputs outputs;
  if (result.isTuple()) {
    const auto& elements = result.toTupleRef().elements();
    TORCH_CHECK(elements.size() == names.size(), "traced ", python_class, " returned ",
                elements.size(), " outputs, expected ", names.size());
    for (size_t i = 0; i < names.size(); ++i) outputs[names[i]] = elements[i].toTensor();
  } else {
    outputs[names.front()] = result.toTensor();
  }
  return outputs;
}

torch::Tensor output_of(const NamedOutputs& outputs, const std::string& name) {
  const auto found = outputs.find(name);
  return found == outputs.end() ? torch::Tensor() : found->second;
}

double difference_of(const torch::Tensor& output, const torch::Tensor& expected) {
  if (!output.defined()) return std::numeric_limits<double>::infinity();
  return max_abs_difference(output, expected);
}

}  // namespace

ReferenceCase read_reference_case(const std::string& folder, const std::string& name) {
  ReferenceCase reference;
  reference.name = name;
  reference.archive_path = (fs::path(folder) / (name + ".pt")).string();
  const Archive io = read_archive((fs::path(folder) / (name + kIoSuffix)).string());
  for (size_t index = 0;; ++index) {
    const auto input = io.tensors.find("input_" + std::to_string(index));
    if (input == io.tensors.end()) break;
    reference.inputs.push_back(input->second);
    NamedOutputs expected;
    const std::string suffix = "_" + std::to_string(index);
    for (const auto& [key, tensor] : io.tensors) {
      const bool is_output_of_this_input =
          key.size() > suffix.size() && key.compare(0, 6, "input_") != 0 &&
          key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (is_output_of_this_input) expected[key.substr(0, key.size() - suffix.size())] = tensor;
    }
    if (expected.empty()) {
      throw ArchiveError("reference case '" + name + "' holds input_" + std::to_string(index) +
                         " but no outputs for it");
    }
    reference.expected.push_back(expected);
  }
  if (reference.inputs.empty()) {
    throw ArchiveError("reference case '" + name + "' in '" + folder + "' holds no input_0");
  }
  return reference;
}

std::vector<std::string> list_reference_cases(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string file = entry.path().filename().string();
    const size_t suffix = std::string(kIoSuffix).size();
    if (file.size() > suffix && file.compare(file.size() - suffix, suffix, kIoSuffix) == 0) {
      const std::string name = file.substr(0, file.size() - suffix);
      if (fs::exists(fs::path(folder) / (name + ".pt"))) names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

double max_abs_difference(const torch::Tensor& actual, const torch::Tensor& expected) {
  if (!actual.sizes().equals(expected.sizes())) return std::numeric_limits<double>::infinity();
  if (actual.numel() == 0) return 0.0;
  return (actual.to(torch::kDouble) - expected.to(torch::kDouble)).abs().max().item<double>();
}

std::vector<OutputDifference> measure_reference_case(const ReferenceCase& reference,
                                                     Optimization optimization) {
  const AnyModel native = load_any_model(reference.archive_path, optimization);
  torch::jit::Module traced = torch::jit::load(reference.archive_path, torch::kCPU);
  traced.eval();
  torch::InferenceMode inference;

  std::vector<OutputDifference> differences;
  for (size_t index = 0; index < reference.inputs.size(); ++index) {
    const torch::Tensor& input = reference.inputs[index];
    const NamedOutputs native_outputs = native.forward(input);
    const NamedOutputs traced_outputs = run_traced(traced, native.config.model, input);
    for (const auto& [name, expected] : reference.expected[index]) {
      OutputDifference difference;
      difference.input_index = index;
      difference.input_shape = input.sizes().vec();
      difference.output_name = name;
      difference.expected = expected;
      difference.native_output = output_of(native_outputs, name);
      difference.traced_output = output_of(traced_outputs, name);
      difference.native = difference_of(difference.native_output, expected);
      difference.traced = difference_of(difference.traced_output, expected);
      differences.push_back(difference);
    }
  }
  return differences;
}

}  // namespace dlwpt::weights
