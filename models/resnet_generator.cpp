#include "dlwpt/models/resnet_generator.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
// libtorch 1.13's module header uses the functional one without including it.
#include <torch/nn/functional/instancenorm.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/padding.h>

#include "dlwpt/layers/resnet_block.h"
#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {

constexpr int64_t kDownsamplings = 2;

nn::ReLU relu() { return nn::ReLU(nn::ReLUOptions(/*inplace=*/true)); }

// Conv2d(in, out, 3, stride 2, padding 1), InstanceNorm2d, ReLU: halves H and W.
void append_downsampling(nn::Sequential& model, int64_t in_channels, int64_t out_channels) {
  model->push_back(
      nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 3).stride(2).padding(1)));
  model->push_back(nn::InstanceNorm2d(out_channels));
  model->push_back(relu());
}

// ConvTranspose2d(in, out, 3, stride 2, padding 1, output_padding 1), InstanceNorm2d, ReLU:
// doubles H and W.
void append_upsampling(nn::Sequential& model, int64_t in_channels, int64_t out_channels) {
  model->push_back(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in_channels, out_channels, 3)
                                           .stride(2)
                                           .padding(1)
                                           .output_padding(1)));
  model->push_back(nn::InstanceNorm2d(out_channels));
  model->push_back(relu());
}

}  // namespace

ResNetGeneratorImpl::ResNetGeneratorImpl(const ResNetGeneratorOptions& options_)
    : options(options_) {
  reset();
}

void ResNetGeneratorImpl::reset() {
  TORCH_CHECK(options.input_nc() > 0 && options.output_nc() > 0,
              "ResNetGenerator: input_nc and output_nc must be positive, got ",
              options.input_nc(), " and ", options.output_nc());
  TORCH_CHECK(options.ngf() > 0, "ResNetGenerator: ngf must be positive, got ", options.ngf());
  TORCH_CHECK(options.n_blocks() >= 0, "ResNetGenerator: n_blocks must be >= 0, got ",
              options.n_blocks());
  const int64_t ngf = options.ngf();

  // Keep in step with state_numel below.
  model = nn::Sequential(nn::ReflectionPad2d(3),
                         nn::Conv2d(nn::Conv2dOptions(options.input_nc(), ngf, 7)),
                         nn::InstanceNorm2d(ngf), relu());
  for (int64_t i = 0; i < kDownsamplings; ++i) {
    const int64_t mult = int64_t{1} << i;
    append_downsampling(model, ngf * mult, ngf * mult * 2);
  }
  const int64_t block_channels = ngf * (int64_t{1} << kDownsamplings);
  for (int64_t i = 0; i < options.n_blocks(); ++i) {
    model->push_back(ResNetBlock(block_channels));
  }
  for (int64_t i = 0; i < kDownsamplings; ++i) {
    const int64_t mult = int64_t{1} << (kDownsamplings - i);
    append_upsampling(model, ngf * mult, ngf * mult / 2);
  }
  model->push_back(nn::ReflectionPad2d(3));
  model->push_back(nn::Conv2d(nn::Conv2dOptions(ngf, options.output_nc(), 7)));
  model->push_back(nn::Tanh());
  register_module("model", model);
}

int64_t ResNetGeneratorImpl::state_numel(const ResNetGeneratorOptions& options) {
  // The layers of the constructor that hold values: InstanceNorm2d (no affine, no running
  // statistics), ReLU, padding and Tanh hold none.
  const int64_t ngf = options.ngf();
  constexpr int64_t k7x7 = 7 * 7;
  constexpr int64_t k3x3 = 3 * 3;
  int64_t values = conv_state_numel(options.input_nc(), ngf, k7x7);
  for (int64_t i = 0; i < kDownsamplings; ++i) {
    const int64_t mult = int64_t{1} << i;
    values += conv_state_numel(ngf * mult, ngf * mult * 2, k3x3);
  }
  const int64_t block_channels = ngf * (int64_t{1} << kDownsamplings);
  values += options.n_blocks() * ResNetBlockImpl::state_numel(block_channels);
  for (int64_t i = 0; i < kDownsamplings; ++i) {
    const int64_t mult = int64_t{1} << (kDownsamplings - i);
    values += conv_state_numel(ngf * mult, ngf * mult / 2, k3x3);
  }
  return values + conv_state_numel(ngf, options.output_nc(), k7x7);
}

torch::Tensor ResNetGeneratorImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.input_nc(),
              "ResNetGenerator expects an N x ", options.input_nc(), " x H x W input, got ",
              input.sizes());
  return model->forward(input);
}

}  // namespace dlwpt
