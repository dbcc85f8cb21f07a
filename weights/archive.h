#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include "dlwpt/weights/errors.h"

namespace dlwpt::weights {

/// Named tensors, ordered by name: parameters and buffers as a PyTorch `state_dict` holds
/// them, with dotted keys such as `model.1.weight` or `unet.last.bias`.
using TensorMap = std::map<std::string, torch::Tensor>;

/// Thrown for every problem with a weights archive: unreadable file, not an archive, or
/// tensors that do not fit the module. `what()` names the file or the tensors.
class ArchiveError : public FileError {
 public:
  using FileError::FileError;
};

/// The model class and constructor options an archive was saved with, stored in the archive
/// as the extra file `dlwpt_model.cfg` ("key=value" lines, the first `model=<class>`); written
/// by tools/convert.py, tools/testing/export_reference.py and `save_model`.
struct ModelConfig {
  static constexpr const char* kArchiveEntry = "dlwpt_model.cfg";

  std::string model;  ///< Python class name: ResNetGenerator, LunaModel or UNetWrapper
  std::map<std::string, std::string> options;

  static ModelConfig parse(const std::string& text);
  std::string to_text() const;

  /// Typed option values; throw ArchiveError naming the option when absent or malformed.
  const std::string& text(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  bool boolean(const std::string& key) const;
};

/// What a TorchScript archive holds for this project.
struct Archive {
  TensorMap tensors;                        ///< every parameter and buffer, by state_dict key
  std::optional<ModelConfig> model_config;  ///< when the archive was saved with one
};

struct LoadOptions {
  /// Require each parameter and buffer of the module to be in the archive with the same shape
  /// and dtype, and each tensor of the archive to be used. With strict=false, only the names
  /// both sides have are copied (shapes and dtypes must still agree).
  TORCH_ARG(bool, strict) = true;
  /// Only archive tensors under this prefix are considered, and the prefix is removed from
  /// their names: "model." loads the generator that the book's traced CycleGAN wraps.
  TORCH_ARG(std::string, prefix) = "";
};

/// What `load_state_dict` copied and what it could not match (the latter empty when strict).
struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     ///< in the module, not in the tensors
  std::vector<std::string> unexpected;  ///< in the tensors, not in the module
};

/// Every parameter and buffer of the module, recursively, by state_dict key.
TensorMap state_dict(const torch::nn::Module& module);

/// Reads a TorchScript archive saved by Python's `torch.jit.save` (traced or scripted) or by
/// C++ (`torch::save`, `save_archive`, `write_archive`). Every tensor is checked against the
/// record that holds its values (offset, sizes and strides within the bytes, strides not
/// negative, a floating point or integer dtype). Anything wrong with the file, down to code
/// in it that TorchScript cannot compile, throws ArchiveError whose first line names the file.
Archive read_archive(const std::string& path);

/// Copies `tensors` into the module's parameters and buffers in place (so optimizers and other
/// holders of those tensors see the new values). Throws ArchiveError listing every missing,
/// unexpected, shape-mismatched and dtype-mismatched name before anything is copied.
LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadOptions& options = {});

/// `read_archive` then `load_state_dict`; errors name the file.
LoadReport load_archive(torch::nn::Module& module, const std::string& path,
                        const LoadOptions& options = {});

/// Writes every parameter and buffer of the module to a TorchScript archive that
/// `load_archive` and Python's `torch.jit.load(path).state_dict()` read back unchanged.
/// Written to a temporary file and renamed, so a failed save leaves no partial archive.
void save_archive(const torch::nn::Module& module, const std::string& path,
                  const std::optional<ModelConfig>& model_config = std::nullopt);

/// Writes named tensors to an archive that `read_archive` reads back; Python reads them with
/// `dict(torch.jit.load(path).named_buffers())` (tools/archive.py `load_tensors`).
void write_archive(const TensorMap& tensors, const std::string& path);

}  // namespace dlwpt::weights
