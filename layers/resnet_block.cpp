#include "dlwpt/layers/resnet_block.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
// libtorch 1.13's module header uses the functional one without including it.
#include <torch/nn/functional/instancenorm.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/padding.h>

#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

ResNetBlockImpl::ResNetBlockImpl(const ResNetBlockOptions& options_)
    : options(options_) {
  reset();
}

void ResNetBlockImpl::reset() {
  TORCH_CHECK(options.dim() > 0, "ResNetBlock: dim must be positive, got ", options.dim());
  const int64_t dim = options.dim();
  auto conv3x3 = [dim] { return nn::Conv2d(nn::Conv2dOptions(dim, dim, 3).bias(true)); };
  conv_block = register_module(
      "conv_block",
      nn::Sequential(nn::ReflectionPad2d(1), conv3x3(), nn::InstanceNorm2d(dim),
                     nn::ReLU(nn::ReLUOptions(/*inplace=*/true)), nn::ReflectionPad2d(1),
                     conv3x3(), nn::InstanceNorm2d(dim)));
}

int64_t ResNetBlockImpl::state_numel(const ResNetBlockOptions& options) {
  // Two 3x3 convolutions; InstanceNorm2d without affine or running statistics holds nothing.
  return 2 * conv_state_numel(options.dim(), options.dim(), 3 * 3);
}

torch::Tensor ResNetBlockImpl::forward(const torch::Tensor& input) {
  return input + conv_block->forward(input);
}

}  // namespace dlwpt
