// The book's trained checkpoints (../shared/dlwpt), converted by tools/convert.py, on real data.

#include "tests/test_support.h"
#include "weights/reference_case.h"

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
    std::cout << "cls_val_example " << difference.output_name
              << ": max |native - PyTorch| = " << difference.native
              << ", max |traced - PyTorch| = " << difference.traced << "\n";
    EXPECT_LE(difference.native, kParityTolerance);
    EXPECT_LE(difference.traced, kParityTolerance);
  }
  const auto probabilities = reference.expected[0].at("probabilities");
  std::cout << "nodule probability (PyTorch): " << probabilities[0][1].item<double>() << "\n";
}

}  // namespace
}  // namespace dlwpt::testing
