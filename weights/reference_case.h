#pragma once

#include <limits>
#include <string>
#include <vector>

#include "dlwpt/weights/model_archive.h"

namespace dlwpt::weights {

/// One reference case written by tools/testing/export_reference.py: `<name>.pt`, the traced Python
/// model with its configuration, and `<name>.io.pt`, inputs `input_<i>` with the eager Python
/// outputs for them (`output_<i>`, or `logits_<i>` and `probabilities_<i>`).
struct ReferenceCase {
  std::string name;
  std::string archive_path;
  std::vector<torch::Tensor> inputs;
  std::vector<NamedOutputs> expected;  ///< per input
};

/// Reads `<folder>/<name>.pt` and `<folder>/<name>.io.pt`.
ReferenceCase read_reference_case(const std::string& folder, const std::string& name);

/// The names of all cases in a folder (every `<name>.io.pt` with its `<name>.pt`), sorted.
std::vector<std::string> list_reference_cases(const std::string& folder);

/// How far one output of a model is from Python's; infinite when the shapes differ.
struct OutputDifference {
  size_t input_index = 0;
  std::vector<int64_t> input_shape;
  std::string output_name;
  double native = std::numeric_limits<double>::infinity();  ///< native C++ model
  double traced = std::numeric_limits<double>::infinity();  ///< traced archive via torch::jit
  /// The outputs themselves (undefined when a model did not produce this one), for
  /// comparisons that need more than the largest absolute difference.
  torch::Tensor expected;
  torch::Tensor native_output;
  torch::Tensor traced_output;
};

/// Largest absolute elementwise difference; infinity when the shapes differ.
double max_abs_difference(const torch::Tensor& actual, const torch::Tensor& expected);

/// Runs the native model (built from the archive's configuration, loaded strictly, prepared
/// as `optimization` says) and the traced archive (through torch::jit::load) on every input
/// of the case, in eval mode and inference mode, and measures each output against Python's.
std::vector<OutputDifference> measure_reference_case(
    const ReferenceCase& reference, Optimization optimization = Optimization::for_inference);

}  // namespace dlwpt::weights
