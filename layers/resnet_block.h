#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>
#include <torch/arg.h>

namespace dlwpt {

/// Options for `ResNetBlock`, the residual block of the CycleGAN generator.
struct ResNetBlockOptions {
  /* implicit */ ResNetBlockOptions(int64_t dim) : dim_(dim) {}

  /// Number of channels, kept unchanged by the block.
  TORCH_ARG(int64_t, dim);
};

/// CycleGAN residual block: `output = input + conv_block(input)`, where `conv_block` is
/// ReflectionPad2d(1), Conv2d 3x3, InstanceNorm2d, ReLU, ReflectionPad2d(1), Conv2d 3x3,
/// InstanceNorm2d. Parameter names match Python's `conv_block.1.weight`, `conv_block.5.bias`.
class ResNetBlockImpl : public torch::nn::Cloneable<ResNetBlockImpl> {
 public:
  explicit ResNetBlockImpl(const ResNetBlockOptions& options_);

  /// (Re)builds the submodules from `options`: what clone() calls (torch::nn::Cloneable).
  void reset() override;

  torch::Tensor forward(const torch::Tensor& input);

  /// Values in the state_dict of a block with these options (layers/state_numel.h).
  static int64_t state_numel(const ResNetBlockOptions& options);

  ResNetBlockOptions options;
  torch::nn::Sequential conv_block{nullptr};
};

TORCH_MODULE(ResNetBlock);

}  // namespace dlwpt
