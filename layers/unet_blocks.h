#pragma once

#include <string>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>


namespace dlwpt {

/// How a U-Net up block doubles the spatial size, named as Python's `up_mode` strings.
enum class UpMode {
  upconv,    ///< ConvTranspose2d(kernel 2, stride 2)
  upsample,  ///< bilinear Upsample(scale 2, align_corners=false) then Conv2d 1x1
};

/// Parses Python's `up_mode` string ("upconv" or "upsample").
UpMode up_mode_from_string(const std::string& name);
std::string to_string(UpMode mode);

/// Options for `UNetConvBlock`: two 3x3 convolutions with ReLU, each optionally followed by
/// BatchNorm2d.
struct UNetConvBlockOptions {
  UNetConvBlockOptions(int64_t in_size, int64_t out_size) : in_size_(in_size), out_size_(out_size) {}

  TORCH_ARG(int64_t, in_size);
  TORCH_ARG(int64_t, out_size);
  /// Zero-pad the convolutions by 1 so that they keep the spatial size.
  TORCH_ARG(bool, padding) = false;
  TORCH_ARG(bool, batch_norm) = false;
};

/// Sequential `block` = Conv2d 3x3, ReLU, [BatchNorm2d], Conv2d 3x3, ReLU, [BatchNorm2d],
/// indexed as in Python so that keys read `block.0.weight`, `block.2.running_mean`, ...
class UNetConvBlockImpl : public torch::nn::Cloneable<UNetConvBlockImpl> {
 public:
  explicit UNetConvBlockImpl(const UNetConvBlockOptions& options_);

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  torch::Tensor forward(const torch::Tensor& input);

  /// Values in the state_dict of a block with these options (layers/state_numel.h).
  static int64_t state_numel(const UNetConvBlockOptions& options);

  UNetConvBlockOptions options;
  torch::nn::Sequential block{nullptr};
};

TORCH_MODULE(UNetConvBlock);

/// Options for `UNetUpBlock`: doubles the size of its input, joins the bridge from the down
/// path and convolves.
struct UNetUpBlockOptions {
  UNetUpBlockOptions(int64_t in_size, int64_t out_size) : in_size_(in_size), out_size_(out_size) {}

  TORCH_ARG(int64_t, in_size);
  TORCH_ARG(int64_t, out_size);
  TORCH_ARG(UpMode, up_mode) = UpMode::upconv;
  TORCH_ARG(bool, padding) = false;
  TORCH_ARG(bool, batch_norm) = false;
};

/// Python's `nn.Sequential(nn.Upsample(mode='bilinear', scale_factor=2), nn.Conv2d(in, out, 1))`
/// of the upsample mode (keys `1.weight`, `1.bias`): a Sequential with a typed forward, which
/// AnyModule can hold.
class UpsampleConvImpl : public torch::nn::SequentialImpl {
 public:
  UpsampleConvImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& input);
};

TORCH_MODULE(UpsampleConv);

/// `up` (ConvTranspose2d, or UpsampleConv with keys `up.1.*`), then
/// `conv_block` over cat([up(x), center_crop(bridge)], dim=1).
class UNetUpBlockImpl : public torch::nn::Cloneable<UNetUpBlockImpl> {
 public:
  explicit UNetUpBlockImpl(const UNetUpBlockOptions& options_);

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bridge);

  /// Values in the state_dict of a block with these options (layers/state_numel.h).
  static int64_t state_numel(const UNetUpBlockOptions& options);

  UNetUpBlockOptions options;
  /// As Python's `self.up`: a ConvTranspose2d for upconv, an UpsampleConv for upsample
  /// (optimize_for_inference may put an equal layer in its place).
  torch::nn::AnyModule up;
  UNetConvBlock conv_block{nullptr};
};

TORCH_MODULE(UNetUpBlock);

/// The central `height` x `width` window of an NCHW tensor, rounding the offset down as
/// Python's `UNetUpBlock.center_crop` does.
torch::Tensor center_crop(const torch::Tensor& layer, int64_t height, int64_t width);

}  // namespace dlwpt
