// Native models and traced archives against PyTorch's eager outputs, for every reference case
// tools/export_reference.py writes.

#include <algorithm>

#include "tests/test_support.h"
#include "weights/model_archive.h"
#include "weights/reference_case.h"

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

TEST_P(ReferenceParity, NativeAndTracedEqualPyTorch) {
  const ParityCase& parity_case = GetParam();
  const auto reference = weights::read_reference_case(reference_dir(), parity_case.name);
  const auto config = weights::read_archive(reference.archive_path).model_config;
  ASSERT_TRUE(config.has_value());
  ASSERT_EQ(config->model, parity_case.python_class);

  const auto differences = weights::measure_reference_case(reference);
  const size_t outputs_per_input = weights::output_names(config->model).size();
  ASSERT_EQ(differences.size(), reference.inputs.size() * outputs_per_input)
      << "every reference output must be measured";
  std::cout << parity_case.name << " (" << parity_case.what << ")\n";
  for (const OutputDifference& difference : differences) {
    std::cout << "  input " << torch::IntArrayRef(difference.input_shape) << " "
              << difference.output_name << ": max |native - PyTorch| = " << difference.native
              << ", max |traced - PyTorch| = " << difference.traced << "\n";
    EXPECT_LE(difference.native, kParityTolerance)
        << difference.output_name << " of input " << difference.input_index;
    EXPECT_LE(difference.traced, kParityTolerance)
        << difference.output_name << " of input " << difference.input_index;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ReferenceParity, ::testing::ValuesIn(kParityCases), case_name);

// The measurement can fail: a weight nudged by 1e-3 shows in the outputs.
TEST(ReferenceParity, APerturbedWeightIsDetected) {
  const auto reference = weights::read_reference_case(reference_dir(), "luna");
  auto model = weights::load_model<LunaModel>(reference.archive_path);
  {
    torch::NoGradGuard no_grad;
    model->head_linear->bias[1].add_(1e-3);
  }
  torch::InferenceMode inference;
  const double difference = weights::max_abs_difference(model(reference.inputs[0]).logits,
                                                        reference.expected[0].at("logits"));
  std::cout << "perturbed head_linear.bias: max |native - PyTorch| = " << difference << "\n";
  EXPECT_GT(difference, kParityTolerance);
  EXPECT_NEAR(difference, 1e-3, kParityTolerance);
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
