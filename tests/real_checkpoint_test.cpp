// The book's trained checkpoints (../shared/dlwpt), converted by tools/convert.py, on real data.

#include <torch/script.h>

#include "dlwpt/ct/scan_io.h"
#include "dlwpt/ct/slices.h"
#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/reference_case.h"

namespace dlwpt::testing {
namespace {

#define SKIP_WITHOUT_BOOK_DATA()                                                        \
  if (!has_data_dir()) {                                                                \
    GTEST_SKIP() << "the book's data folder is missing (DLWPT_DATA_DIR='" << data_dir() \
                 << "'): see README, 'Real weights'";                                   \
  }

TEST(RealCheckpoints, ClassifierOnTheBooksValidationChunk) {
  SKIP_WITHOUT_BOOK_DATA();
  const auto reference = weights::read_reference_case(reference_dir(), "book_cls");
  const auto differences = weights::measure_reference_case(reference);
  ASSERT_EQ(differences.size(), 2u);  // logits and probabilities of the one chunk
  for (const auto& difference : differences) {
    const Tolerance tolerance = parity_tolerance("LunaModel", difference.output_name);
    const auto native = closeness(difference.native_output, difference.expected, tolerance);
    const auto traced = closeness(difference.traced_output, difference.expected, tolerance);
    std::cout << "cls_val_example " << difference.output_name << ": native vs PyTorch " << native
              << "; traced vs PyTorch " << traced << "\n";
    EXPECT_TRUE(native.within) << native;
    EXPECT_TRUE(traced.within) << traced;
  }
  const auto probabilities = reference.expected[0].at("probabilities");
  std::cout << "nodule probability (PyTorch): " << probabilities[0][1].item<double>() << "\n";
}

// 7-slice stacks of the real CT, at both ends (where the neighbours are clamped) and in the
// middle, through the converted seg checkpoint: native, traced and Python eager agree.
TEST(RealCheckpoints, SegmenterOnTheRealCtSeries) {
  SKIP_WITHOUT_BOOK_DATA();
  const auto volume =
      ct::read_dicom_series(data_dir() + "/data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083");
  const int64_t last = volume.slices() - 1;
  const std::vector<int64_t> slices = {0, 1, 2, 49, 50, last - 1, last};
  std::vector<torch::Tensor> stacks;
  for (int64_t slice : slices) stacks.push_back(ct::segmentation_input(volume.hu, slice, 1));
  const auto batch = torch::cat(stacks);

  const std::string archive = reference_path("book_seg.pt");
  auto native = weights::load_model<UNetWrapper>(archive);
  auto traced = torch::jit::load(archive, torch::kCPU);
  traced.eval();
  torch::Tensor native_output;
  torch::Tensor traced_output;
  {
    torch::InferenceMode inference;
    native_output = native(batch);
    traced_output = traced.forward({batch}).toTensor();
  }
  const auto python_output = run_python_reference(archive, {batch}).at("output_0");

  const auto native_closeness = closeness(native_output, python_output, kHuInputTolerance);
  const auto traced_closeness = closeness(traced_output, python_output, kProbabilityTolerance);
  std::cout << "real CT slices " << torch::IntArrayRef(slices) << " (" << batch.sizes()
            << "): native vs PyTorch " << native_closeness << "; traced vs PyTorch "
            << traced_closeness << "; " << (python_output > 0.5).sum().item<int64_t>()
            << " voxels above 0.5\n";
  EXPECT_TRUE(native_closeness.within) << native_closeness;
  EXPECT_TRUE(traced_closeness.within) << traced_closeness;
  // A trained segmenter marks only a small part of a CT as nodule candidates.
  EXPECT_LT((python_output > 0.5).to(torch::kFloat).mean().item<double>(), 0.05);
}

}  // namespace
}  // namespace dlwpt::testing
