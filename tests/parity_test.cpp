// Native models and traced archives against PyTorch's eager outputs, for every reference case
// tools/testing/export_reference.py writes.

#include <algorithm>
#include <limits>

#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/reference_case.h"

namespace dlwpt::testing {
namespace {

using weights::OutputDifference;

struct ParityCase {
  const char* name;
  const char* python_class;
  const char* what;  // what the case covers, for the log
};

const ParityCase kParityCases[] = {
    {"cyclegan_default", "ResNetGenerator", "default options; square, non-square, batch 2"},
    {"cyclegan_small", "ResNetGenerator", "ngf=8, n_blocks=2; odd sizes, batch 3"},
    {"cyclegan_ngf32", "ResNetGenerator", "ngf=32"},
    {"unet_book", "UNetWrapper", "book config at 512x512; odd size, batch 2"},
    {"unet_upsample", "UNetWrapper", "up_mode=upsample, 2 classes"},
    {"unet_depth4", "UNetWrapper", "in_channels=8, depth=4, wf=3"},
    {"unet_nopad", "UNetWrapper", "padding=false (output smaller), no batch norm"},
    {"luna", "LunaModel", "batch 1 and batch 8"},
};

void PrintTo(const ParityCase& parity_case, std::ostream* out) { *out << parity_case.name; }

std::string case_name(const ::testing::TestParamInfo<ParityCase>& info) {
  return info.param.name;
}

class ReferenceParity : public ::testing::TestWithParam<ParityCase> {};

// One run of the case's native model, prepared as `optimization` says, and of the traced
// archive, against PyTorch's outputs.
void expect_equal_to_pytorch(const weights::ReferenceCase& reference, const std::string& model,
                             weights::Optimization optimization) {
  const auto differences = weights::measure_reference_case(reference, optimization);
  const size_t outputs_per_input = weights::output_names(model).size();
  ASSERT_EQ(differences.size(), reference.inputs.size() * outputs_per_input)
      << "every reference output must be measured";
  const char* how = optimization == weights::Optimization::none ? "plain" : "optimized";
  for (const OutputDifference& difference : differences) {
    const Tolerance tolerance = parity_tolerance(model, difference.output_name);
    const auto native = closeness(difference.native_output, difference.expected, tolerance);
    const auto traced = closeness(difference.traced_output, difference.expected, tolerance);
    std::cout << "  input " << torch::IntArrayRef(difference.input_shape) << " "
              << difference.output_name << ": native (" << how << ") vs PyTorch " << native
              << "; traced vs PyTorch " << traced << "\n";
    EXPECT_TRUE(native.within) << difference.output_name << " of input "
                               << difference.input_index << " (" << how << "): " << native;
    EXPECT_TRUE(traced.within) << difference.output_name << " of input "
                               << difference.input_index << ": " << traced;
  }
}

TEST_P(ReferenceParity, NativeAndTracedEqualPyTorch) {
  const ParityCase& parity_case = GetParam();
  const auto reference = weights::read_reference_case(reference_dir(), parity_case.name);
  const auto config = weights::read_archive(reference.archive_path).model_config;
  ASSERT_TRUE(config.has_value());
  ASSERT_EQ(config->model, parity_case.python_class);
  std::cout << parity_case.name << " (" << parity_case.what << ")\n";
  // The model as written, and as the apps run it.
  expect_equal_to_pytorch(reference, config->model, weights::Optimization::none);
  expect_equal_to_pytorch(reference, config->model, weights::Optimization::for_inference);
}

INSTANTIATE_TEST_SUITE_P(Cases, ReferenceParity, ::testing::ValuesIn(kParityCases), case_name);

// The measurement can fail: a bias nudged by 1e-3 fails the parity check, and moves exactly
// its logit by 1e-3. The move is measured against the unperturbed native model on this machine,
// not against PyTorch, whose logits differ from the native ones by a CPU-dependent rounding.
TEST(ReferenceParity, APerturbedWeightIsDetected) {
  constexpr double kNudge = 1e-3;
  const auto reference = weights::read_reference_case(reference_dir(), "luna");
  auto model = weights::load_model<LunaModel>(reference.archive_path);
  const auto logits = [&] {
    torch::InferenceMode inference;
    return model(reference.inputs[1]).logits.clone();
  };
  const torch::Tensor before = logits();
  const double bias = model->head_linear->bias[1].item<double>();
  {
    torch::NoGradGuard no_grad;
    model->head_linear->bias[1].add_(kNudge);
  }
  const torch::Tensor after = logits();

  const auto against_python = closeness(after, reference.expected[1].at("logits"), kLogitTolerance);
  std::cout << "perturbed head_linear.bias[1] vs PyTorch: " << against_python << "\n";
  EXPECT_FALSE(against_python.within);

  // Only the bias's float32 rounding and the sum's may change the move: an ulp of the largest
  // values involved, each.
  const double magnitude = std::max(before.abs().max().item<double>(), std::abs(bias));
  const double rounding = 2 * std::numeric_limits<float>::epsilon() * (magnitude + kNudge);
  const auto move = (after - before).to(torch::kDouble);
  const double largest_move_error = (move.select(1, 1) - kNudge).abs().max().item<double>();
  const double other_class_move = move.select(1, 0).abs().max().item<double>();
  std::cout << "logit 1 moved by " << kNudge << " +- " << largest_move_error << " (relative "
            << largest_move_error / kNudge << ", rounding bound " << rounding
            << "); logit 0 moved by " << other_class_move << "\n";
  EXPECT_LE(largest_move_error, rounding);
  EXPECT_EQ(other_class_move, 0.0);
}

TEST(ReferenceParity, EveryExportedCaseIsTested) {
  std::vector<std::string> tested;
  for (const auto& parity_case : kParityCases) tested.push_back(parity_case.name);
  for (const auto& name : weights::list_reference_cases(reference_dir())) {
    if (name.rfind("book_", 0) == 0) continue;  // the real checkpoints have their own tests
    EXPECT_NE(std::find(tested.begin(), tested.end(), name), tested.end())
        << "reference case " << name << " has no parity test";
  }
}

}  // namespace
}  // namespace dlwpt::testing
