#pragma once

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dlwpt/weights/archive.h"

namespace dlwpt::testing {

/// How close a C++ output must be to PyTorch's, as numpy's allclose: elementwise
/// |actual - expected| <= atol + rtol * |expected|. Other CPUs (AVX-512 or not, other core
/// counts) sum in other orders, so float32 rounding differs from machine to machine, and it
/// grows with the magnitude of the values: a bound per kind of output, never one absolute
/// figure for all.
struct Tolerance {
  double atol;
  double rtol;
};

// The largest differences measured here (AVX-512, oneDNN 2.6) are 2e-6 for images and
// probabilities and 1.9e-6 for logits of 22; another x86-64 CPU (other kernels, other summation
// orders) measured 5x that on the logits. The absolute parts below are 50x this machine's
// largest difference, so that any x86-64 CPU passes, and still 1000x below what a wrong layer,
// key or option gives (differences of 0.1 and more).

/// Probabilities (softmax, sigmoid) in [0, 1]: bounded, so mostly absolute.
constexpr Tolerance kProbabilityTolerance{1e-4, 1e-5};
/// Generator images (tanh) in [-1, 1]: bounded too.
constexpr Tolerance kImageTolerance{1e-4, 1e-5};
/// Logits are unbounded; their rounding scales with them: LunaModel's reach 22 on the
/// reference inputs. rtol stays 1e-5, so that a 1e-3 change of a logit of 22 still fails
/// (1e-4 + 22 * 1e-5 = 3.2e-4).
constexpr Tolerance kLogitTolerance{1e-4, 1e-5};

/// U-Net probabilities of CT volumes fed as raw HU (+-1000): their float32 rounding is of this
/// order in PyTorch itself. On the real CT PyTorch's float32 output is 1.8e-4 from its float64
/// output, and 1.3e-4 from itself given channels-last input; seeded, untrained batch norms
/// amplify further (6.3e-4 measured on the phantom). The decisive checks, mask and candidates,
/// are exact.
constexpr Tolerance kHuInputTolerance{2e-3, 0};

/// The tolerance of one named output ("logits", "probabilities", "output") of a Python model
/// class (a ResNetGenerator's output is an image, a UNetWrapper's probabilities).
Tolerance parity_tolerance(const std::string& python_class, const std::string& output_name);

/// What `closeness` measured; printed as "max |a-b| 1.2e-06, max relative 3.4e-07 (atol ...,
/// rtol ...)", so that every test shows its figures.
struct Closeness {
  double max_abs = 0;       ///< largest |actual - expected|
  double max_relative = 0;  ///< largest |actual - expected| / max(|expected|, atol)
  Tolerance tolerance{0, 0};
  bool within = false;      ///< allclose: every element within atol + rtol * |expected|
};
std::ostream& operator<<(std::ostream& out, const Closeness& closeness);

/// Compares in float64; shapes that differ are never within.
Closeness closeness(const torch::Tensor& actual, const torch::Tensor& expected,
                    Tolerance tolerance);

/// Folders and programs the tests use: the environment variable named when set, otherwise
/// what the build configured (tests/test_paths.h.in).
std::string reference_dir();  ///< DLWPT_REFERENCE_DIR: cases from tools/testing/export_reference.py
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

/// The bytes of the file at `path`.
std::string read_text(const std::string& path);

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

/// Runs tools/testing/check_archive.py: loads the archive strictly into the Python reference model and
/// returns its state_dict (keys prefixed "loaded_state.") and its eager outputs for `inputs`
/// (`output_<i>`, or `logits_<i>` and `probabilities_<i>`). Throws when Python fails.
weights::TensorMap run_python_reference(const std::string& archive,
                                        const std::vector<torch::Tensor>& inputs = {});

}  // namespace dlwpt::testing
