#include "dlwpt/models/unet.h"

#include <torch/nn/functional/pooling.h>

#include "dlwpt/layers/init.h"
#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

UNetWrapperOptions book_segmentation_options() {
  return UNetWrapperOptions()
      .in_channels(7)
      .n_classes(1)
      .depth(3)
      .wf(4)
      .padding(true)
      .batch_norm(true)
      .up_mode(UpMode::upconv);
}

namespace {

int64_t level_channels(const UNetOptions& options, int64_t level) {
  return int64_t{1} << (options.wf() + level);
}

// down_path[level]: from the previous level's channels (the input's for level 0) to its own.
UNetConvBlockOptions down_block_options(const UNetOptions& options, int64_t level) {
  const int64_t in = level == 0 ? options.in_channels() : level_channels(options, level - 1);
  return UNetConvBlockOptions(in, level_channels(options, level))
      .padding(options.padding())
      .batch_norm(options.batch_norm());
}

// The up block that returns to `level` from the level below it.
UNetUpBlockOptions up_block_options(const UNetOptions& options, int64_t level) {
  return UNetUpBlockOptions(level_channels(options, level + 1), level_channels(options, level))
      .up_mode(options.up_mode())
      .padding(options.padding())
      .batch_norm(options.batch_norm());
}

}  // namespace

UNetImpl::UNetImpl(const UNetOptions& options_) : options(options_) { reset(); }

void UNetImpl::reset() {
  TORCH_CHECK(options.in_channels() > 0, "UNet: in_channels must be positive, got ",
              options.in_channels());
  TORCH_CHECK(options.n_classes() > 0, "UNet: n_classes must be positive, got ",
              options.n_classes());
  TORCH_CHECK(options.depth() >= 1, "UNet: depth must be at least 1, got ", options.depth());
  TORCH_CHECK(options.wf() >= 0 && options.wf() + options.depth() <= 24,
              "UNet: wf must be >= 0 and wf + depth at most 24, got wf=", options.wf(),
              " depth=", options.depth());

  down_path = register_module("down_path", nn::ModuleList());
  for (int64_t level = 0; level < options.depth(); ++level) {
    down_path->push_back(UNetConvBlock(down_block_options(options, level)));
  }
  // Python's up_path runs from the deepest level back to the first.
  up_path = register_module("up_path", nn::ModuleList());
  for (int64_t level = options.depth() - 2; level >= 0; --level) {
    up_path->push_back(UNetUpBlock(up_block_options(options, level)));
  }
  last = register_module(
      "last", nn::Conv2d(nn::Conv2dOptions(level_channels(options, 0), options.n_classes(), 1)));
}

int64_t UNetImpl::state_numel(const UNetOptions& options) {
  int64_t values = conv_state_numel(level_channels(options, 0), options.n_classes(), 1);
  for (int64_t level = 0; level < options.depth(); ++level) {
    values += UNetConvBlockImpl::state_numel(down_block_options(options, level));
  }
  for (int64_t level = options.depth() - 2; level >= 0; --level) {
    values += UNetUpBlockImpl::state_numel(up_block_options(options, level));
  }
  return values;
}

int64_t UNetImpl::size_multiple() const { return int64_t{1} << (options.depth() - 1); }

int64_t UNetImpl::padded_size(int64_t side) const {
  const int64_t multiple = size_multiple();
  return (side + multiple - 1) / multiple * multiple;
}

torch::Tensor UNetImpl::forward(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels(), "UNet expects an N x ",
              options.in_channels(), " x H x W input, got ", x.sizes());
  // forward() of ModuleList entries needs their concrete type, hence as<>().
  std::vector<torch::Tensor> bridges;
  for (size_t level = 0; level < down_path->size(); ++level) {
    x = down_path[level]->as<UNetConvBlock>()->forward(x);
    if (level + 1 < down_path->size()) {
      bridges.push_back(x);
      // The book replaced the original U-Net's max pooling with average pooling.
      x = nn::functional::avg_pool2d(x, nn::functional::AvgPool2dFuncOptions(2));
    }
  }
  for (size_t i = 0; i < up_path->size(); ++i) {
    x = up_path[i]->as<UNetUpBlock>()->forward(x, bridges[bridges.size() - 1 - i]);
  }
  return last(x);
}

UNetWrapperImpl::UNetWrapperImpl(const UNetWrapperOptions& options_)
    : options(options_) {
  reset();
}

void UNetWrapperImpl::reset() {
  input_batchnorm =
      register_module("input_batchnorm", nn::BatchNorm2d(options.in_channels()));
  unet = register_module("unet", UNet(options));
  init_weights_as_book(*this);
}

int64_t UNetWrapperImpl::state_numel(const UNetWrapperOptions& options) {
  return batch_norm_state_numel(options.in_channels()) + UNetImpl::state_numel(options);
}

torch::Tensor UNetWrapperImpl::forward(const torch::Tensor& input_batch) {
  return torch::sigmoid(unet(input_batchnorm(input_batch)));
}

}  // namespace dlwpt
