#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "dlwpt/layers/unet_blocks.h"

namespace dlwpt {

/// Options of the U-Net (jvanvugt/pytorch-unet as used in the book's chapter 13); the
/// defaults are Python's `UNet` defaults.
struct UNetOptions {
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, n_classes) = 2;
  /// Number of levels; the down path pools depth - 1 times.
  TORCH_ARG(int64_t, depth) = 5;
  /// Level i has 2^(wf + i) channels.
  TORCH_ARG(int64_t, wf) = 6;
  /// Zero-pad the 3x3 convolutions so that the output keeps the input size.
  TORCH_ARG(bool, padding) = false;
  TORCH_ARG(bool, batch_norm) = false;
  TORCH_ARG(UpMode, up_mode) = UpMode::upconv;
};

/// Python's `UNetWrapper(**kwargs)` passes its keyword arguments on to `UNet`.
using UNetWrapperOptions = UNetOptions;

/// Configuration of the book's trained segmentation checkpoint
/// (`seg_2020-01-26_19.45.12_w4d3c1-bal_1_nodupe-label_pos-d1_fn8-adam.best.state`).
UNetWrapperOptions book_segmentation_options();

/// U-Net: `down_path` (ModuleList of UNetConvBlock), average pooling between levels, `up_path`
/// (ModuleList of UNetUpBlock) joined with the center-cropped bridges, `last` (Conv2d 1x1).
/// Returns raw class scores; with padding=false the output is smaller than the input.
class UNetImpl : public torch::nn::Cloneable<UNetImpl> {
 public:
  using Options = UNetOptions;

  explicit UNetImpl(const UNetOptions& options_ = {});

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  /// N x in_channels x H x W to N x n_classes x H' x W'. With padding, H' = H and W' = W only
  /// when both are multiples of `size_multiple()`; otherwise each pooling drops an odd last
  /// row or column and the output is smaller, exactly as in Python (the parity tests hold
  /// such sizes), so callers that need the input size pad to `padded_size` first.
  torch::Tensor forward(torch::Tensor x);

  /// 2^(depth - 1): the sides a padded U-Net returns unchanged are multiples of it.
  int64_t size_multiple() const;
  /// The smallest size >= `side` that is a multiple of `size_multiple()`.
  int64_t padded_size(int64_t side) const;

  /// Values in the state_dict (parameters and buffers) of a UNet with these options, in closed
  /// form: the size a configuration describes, known before building it.
  static int64_t state_numel(const UNetOptions& options);

  UNetOptions options;
  torch::nn::ModuleList down_path{nullptr};
  torch::nn::ModuleList up_path{nullptr};
  torch::nn::Conv2d last{nullptr};
};

TORCH_MODULE(UNet);

/// The book's segmentation model: `input_batchnorm` (BatchNorm2d), `unet`, then a sigmoid.
/// Input: N x in_channels x H x W; output: per-pixel probabilities N x n_classes x H' x W'.
class UNetWrapperImpl : public torch::nn::Cloneable<UNetWrapperImpl> {
 public:
  using Options = UNetWrapperOptions;

  explicit UNetWrapperImpl(const UNetWrapperOptions& options_ = {});

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  torch::Tensor forward(const torch::Tensor& input_batch);

  /// Values in the state_dict of a UNetWrapper with these options (see UNetImpl::state_numel).
  static int64_t state_numel(const UNetWrapperOptions& options);

  UNetWrapperOptions options;
  torch::nn::BatchNorm2d input_batchnorm{nullptr};
  UNet unet{nullptr};
};

TORCH_MODULE(UNetWrapper);

}  // namespace dlwpt
