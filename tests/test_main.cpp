// The tests' entry point: the same OpenBLAS kernels as the apps (apps/common/openblas.h), so
// that a test comparing an app's output with the library's or with Python's (which inherits
// the environment) compares runs of the same arithmetic.

#include <gtest/gtest.h>

#include "apps/common/openblas.h"

int main(int argc, char** argv) {
  dlwpt::apps::select_openblas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
