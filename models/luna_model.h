#pragma once

#include <array>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "dlwpt/layers/luna_block.h"

namespace dlwpt {

/// Index, row, column extent of a CT chunk.
using ChunkSize = std::array<int64_t, 3>;

/// Options for `LunaModel`, the nodule classifier of the book's part 2 (defaults as Python's).
struct LunaModelOptions {
  TORCH_ARG(int64_t, in_channels) = 1;
  /// Channels of block1; each later block doubles them.
  TORCH_ARG(int64_t, conv_channels) = 8;
  /// Index, row, column size of the CT chunks the model classifies. Python hard-codes
  /// Linear(1152, 2), which is right for 32 x 48 x 48 with 8 conv channels; the head size is
  /// derived from this instead, so it equals 1152 for the defaults.
  TORCH_ARG(ChunkSize, chunk_size) = {32, 48, 48};
};

/// What `LunaModel::forward` returns: the head's logits and their softmax over classes.
struct LunaModelOutput {
  torch::Tensor logits;         ///< N x 2
  torch::Tensor probabilities;  ///< N x 2, softmax of `logits` over dim 1
};

/// LunaModel: `tail_batchnorm` (BatchNorm3d), `block1`..`block4` (LunaBlock), `head_linear`.
/// Input: N x in_channels x chunk_size CT chunks (the book: HU clipped to [-1000, 1000]).
class LunaModelImpl : public torch::nn::Cloneable<LunaModelImpl> {
 public:
  using Options = LunaModelOptions;

  explicit LunaModelImpl(const LunaModelOptions& options_ = {});

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  LunaModelOutput forward(const torch::Tensor& input_batch);

  /// Number of features `head_linear` takes for the configured chunk size.
  int64_t head_in_features() const;

  /// Values in the state_dict (parameters and buffers) of a LunaModel with these options, in
  /// closed form: the size a configuration describes, known before building it.
  static int64_t state_numel(const LunaModelOptions& options);

  LunaModelOptions options;
  torch::nn::BatchNorm3d tail_batchnorm{nullptr};
  LunaBlock block1{nullptr};
  LunaBlock block2{nullptr};
  LunaBlock block3{nullptr};
  LunaBlock block4{nullptr};
  torch::nn::Linear head_linear{nullptr};
};

TORCH_MODULE(LunaModel);

}  // namespace dlwpt
