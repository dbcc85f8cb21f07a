#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include "dlwpt/layers/inference.h"
#include "dlwpt/layers/int8.h"

namespace dlwpt {

/// Options for `LunaBlock`, one stage of the LunaModel nodule classifier.
struct LunaBlockOptions {
  LunaBlockOptions(int64_t in_channels, int64_t conv_channels)
      : in_channels_(in_channels), conv_channels_(conv_channels) {}

  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, conv_channels);
};

/// Conv3d 3x3x3 + ReLU, Conv3d 3x3x3 + ReLU, MaxPool3d(2, 2): each spatial side is halved.
/// Submodule names equal Python's (`conv1`, `relu1`, `conv2`, `relu2`, `maxpool`).
class LunaBlockImpl : public torch::nn::Cloneable<LunaBlockImpl> {
 public:
  explicit LunaBlockImpl(const LunaBlockOptions& options_);

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  /// Virtual so that BlockedLunaBlockImpl, the same block in another memory layout, can take
  /// its place behind a LunaBlock holder.
  virtual torch::Tensor forward(const torch::Tensor& input);

  /// Values in the state_dict of a block with these options (layers/state_numel.h).
  static int64_t state_numel(const LunaBlockOptions& options);

  LunaBlockOptions options;
  torch::nn::Conv3d conv1{nullptr};
  torch::nn::ReLU relu1{nullptr};
  torch::nn::Conv3d conv2{nullptr};
  torch::nn::ReLU relu2{nullptr};
  torch::nn::MaxPool3d maxpool{nullptr};
};

TORCH_MODULE(LunaBlock);

/// A LunaBlock's layers (shared, under the same names) run in oneDNN's blocked layout, with
/// the convolution weights reordered into it once: ATen's own dense 3-D convolution and
/// pooling are several times slower on CPU. Takes a dense or blocked float32 or bfloat16 CPU
/// tensor and computes in its convolutions' dtype (a dense input is cast as it is reordered);
/// returns a blocked one, for the next blocked block, or with `dense_output` a dense float32
/// one, as the block it replaces (optimize_for_inference in models/inference.h chains them
/// so). A clone is a plain LunaBlockImpl.
class BlockedLunaBlockImpl : public LunaBlockImpl {
 public:
  BlockedLunaBlockImpl(const LunaBlockImpl& block, bool dense_output);

  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  bool dense_output_;
  PackedConv3d packed_conv1_;
  PackedConv3d packed_conv2_;
};

/// A LunaBlock whose convolutions compute in int8 (layers/int8.h), sharing the block's
/// layers under the same names; calibrating until finish_calibration(). Its convolutions' are
/// the only int8 part: ReLUs and pooling run on their float32 outputs. A clone is a plain
/// LunaBlockImpl.
class Int8LunaBlockImpl : public LunaBlockImpl {
 public:
  explicit Int8LunaBlockImpl(const LunaBlockImpl& block);

  torch::Tensor forward(const torch::Tensor& input) override;
  void finish_calibration();

 private:
  Int8Conv3d int8_conv1_;
  Int8Conv3d int8_conv2_;
};

}  // namespace dlwpt
