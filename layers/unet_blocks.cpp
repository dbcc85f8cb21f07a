#include "dlwpt/layers/unet_blocks.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/upsampling.h>

#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

UpMode up_mode_from_string(const std::string& name) {
  if (name == "upconv") return UpMode::upconv;
  if (name == "upsample") return UpMode::upsample;
  TORCH_CHECK(false, "unknown U-Net up_mode '", name, "' (expected 'upconv' or 'upsample')");
}

std::string to_string(UpMode mode) {
  return mode == UpMode::upconv ? "upconv" : "upsample";
}

UNetConvBlockImpl::UNetConvBlockImpl(const UNetConvBlockOptions& options_)
    : options(options_) {
  reset();
}

void UNetConvBlockImpl::reset() {
  TORCH_CHECK(options.in_size() > 0 && options.out_size() > 0,
              "UNetConvBlock: channel counts must be positive, got in_size=", options.in_size(),
              " out_size=", options.out_size());
  const int64_t pad = options.padding() ? 1 : 0;
  block = nn::Sequential();
  int64_t channels = options.in_size();
  for (int conv = 0; conv < 2; ++conv) {
    block->push_back(nn::Conv2d(nn::Conv2dOptions(channels, options.out_size(), 3).padding(pad)));
    // In place (Python's is not): the same values and gradients, one activation less.
    block->push_back(nn::ReLU(nn::ReLUOptions(/*inplace=*/true)));
    if (options.batch_norm()) block->push_back(nn::BatchNorm2d(options.out_size()));
    channels = options.out_size();
  }
  register_module("block", block);
}

int64_t UNetConvBlockImpl::state_numel(const UNetConvBlockOptions& options) {
  const int64_t out = options.out_size();
  const int64_t norms = options.batch_norm() ? 2 * batch_norm_state_numel(out) : 0;
  return conv_state_numel(options.in_size(), out, 3 * 3) + conv_state_numel(out, out, 3 * 3) +
         norms;
}

torch::Tensor UNetConvBlockImpl::forward(const torch::Tensor& input) {
  return block->forward(input);
}

UpsampleConvImpl::UpsampleConvImpl(int64_t in_channels, int64_t out_channels) {
  // Python's nn.Upsample(mode='bilinear', scale_factor=2) leaves align_corners at False.
  push_back(nn::Upsample(nn::UpsampleOptions()
                             .scale_factor(std::vector<double>{2.0, 2.0})
                             .mode(torch::kBilinear)
                             .align_corners(false)));
  push_back(nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 1)));
}

torch::Tensor UpsampleConvImpl::forward(const torch::Tensor& input) {
  return SequentialImpl::forward(input);
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNetUpBlockOptions& options_)
    : options(options_) {
  reset();
}

void UNetUpBlockImpl::reset() {
  TORCH_CHECK(options.in_size() > 0 && options.out_size() > 0,
              "UNetUpBlock: channel counts must be positive, got in_size=", options.in_size(),
              " out_size=", options.out_size());
  if (options.up_mode() == UpMode::upconv) {
    up = nn::AnyModule(nn::ConvTranspose2d(
        nn::ConvTranspose2dOptions(options.in_size(), options.out_size(), 2).stride(2)));
  } else {
    up = nn::AnyModule(UpsampleConv(options.in_size(), options.out_size()));
  }
  register_module("up", up.ptr());
  // The up layer halves the channels; the bridge brings the other half back to in_size.
  conv_block = register_module(
      "conv_block", UNetConvBlock(UNetConvBlockOptions(options.in_size(), options.out_size())
                                      .padding(options.padding())
                                      .batch_norm(options.batch_norm())));
}

int64_t UNetUpBlockImpl::state_numel(const UNetUpBlockOptions& options) {
  // upconv: ConvTranspose2d 2x2; upsample: Conv2d 1x1 after the (stateless) Upsample.
  const int64_t up_kernel_volume = options.up_mode() == UpMode::upconv ? 2 * 2 : 1;
  return conv_state_numel(options.in_size(), options.out_size(), up_kernel_volume) +
         UNetConvBlockImpl::state_numel(UNetConvBlockOptions(options.in_size(), options.out_size())
                                            .padding(options.padding())
                                            .batch_norm(options.batch_norm()));
}

torch::Tensor UNetUpBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& bridge) {
  auto upsampled = up.forward(x);
  auto cropped = center_crop(bridge, upsampled.size(2), upsampled.size(3));
  return conv_block->forward(torch::cat({upsampled, cropped}, 1));
}

torch::Tensor center_crop(const torch::Tensor& layer, int64_t height, int64_t width) {
  TORCH_CHECK(layer.dim() == 4, "center_crop expects an NCHW tensor, got ", layer.sizes());
  TORCH_CHECK(layer.size(2) >= height && layer.size(3) >= width, "center_crop: cannot crop ",
              layer.sizes(), " to ", height, "x", width);
  const int64_t top = (layer.size(2) - height) / 2;
  const int64_t left = (layer.size(3) - width) / 2;
  return layer.narrow(2, top, height).narrow(3, left, width);
}

}  // namespace dlwpt
