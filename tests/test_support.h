#pragma once

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "weights/archive.h"

namespace dlwpt::testing {

/// Largest accepted absolute difference between a C++ output and PyTorch's.
constexpr double kParityTolerance = 1e-5;

/// The same for U-Net probabilities of CT volumes fed as raw HU (+-1000): their float32
/// rounding is of this order in PyTorch itself. On the real CT PyTorch's float32 output is
/// 1.8e-4 from its float64 output, and 1.3e-4 from itself given channels-last input; seeded,
/// untrained batch norms amplify further (6.3e-4 measured on the phantom). The decisive
/// checks, mask and candidates, are exact.
constexpr double kHuInputTolerance = 2e-3;

/// Folders and programs the tests use: the environment variable named when set, otherwise
/// what the build configured (tests/test_paths.h.in).
std::string reference_dir();  ///< DLWPT_REFERENCE_DIR: cases from tools/export_reference.py
std::string reference_path(const std::string& file);
std::string data_dir();       ///< DLWPT_DATA_DIR: the book's public files (may be absent)
bool has_data_dir();
std::string python();         ///< DLWPT_PYTHON: Python with torch
std::string source_dir();     ///< DLWPT_SOURCE_DIR
std::string binary_dir();     ///< DLWPT_BINARY_DIR: the build, with the apps

/// A fresh folder under the system's temporary folder, removed when the object goes.
class TemporaryFolder {
 public:
  TemporaryFolder();
  ~TemporaryFolder();
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;

  std::string path(const std::string& file) const;

 private:
  std::string root_;
};

/// Writes `bytes` to `path`.
void write_file(const std::string& path, const std::string& bytes);

/// The message of the `Error` that `fn` throws (printed, so the log shows each message the
/// tests check); records a test failure and returns "" when it throws nothing.
template <typename Error, typename Fn>
std::string error_message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& error) {
    std::cout << "  error: " << error.what() << "\n";
    return error.what();
  }
  ADD_FAILURE() << "no exception of the expected type was thrown";
  return "";
}

/// Runs a command through the shell and returns its exit status.
int run_command(const std::string& command);

/// Runs tools/check_archive.py: loads the archive strictly into the Python reference model and
/// returns its state_dict (keys prefixed "loaded_state.") and its eager outputs for `inputs`
/// (`output_<i>`, or `logits_<i>` and `probabilities_<i>`). Throws when Python fails.
weights::TensorMap run_python_reference(const std::string& archive,
                                        const std::vector<torch::Tensor>& inputs = {});

}  // namespace dlwpt::testing
