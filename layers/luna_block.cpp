#include "dlwpt/layers/luna_block.h"

#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {
nn::Conv3d conv3x3x3(int64_t in_channels, int64_t out_channels) {
  return nn::Conv3d(nn::Conv3dOptions(in_channels, out_channels, 3).padding(1).bias(true));
}
}  // namespace

LunaBlockImpl::LunaBlockImpl(const LunaBlockOptions& options_) : options(options_) { reset(); }

void LunaBlockImpl::reset() {
  TORCH_CHECK(options.in_channels() > 0 && options.conv_channels() > 0,
              "LunaBlock: channel counts must be positive, got in_channels=",
              options.in_channels(), " conv_channels=", options.conv_channels());
  conv1 = register_module("conv1", conv3x3x3(options.in_channels(), options.conv_channels()));
  relu1 = register_module("relu1", nn::ReLU(nn::ReLUOptions(/*inplace=*/true)));
  conv2 = register_module("conv2", conv3x3x3(options.conv_channels(), options.conv_channels()));
  relu2 = register_module("relu2", nn::ReLU(nn::ReLUOptions(/*inplace=*/true)));
  maxpool = register_module("maxpool", nn::MaxPool3d(nn::MaxPool3dOptions(2).stride(2)));
}

int64_t LunaBlockImpl::state_numel(const LunaBlockOptions& options) {
  constexpr int64_t kKernelVolume = 3 * 3 * 3;
  return conv_state_numel(options.in_channels(), options.conv_channels(), kKernelVolume) +
         conv_state_numel(options.conv_channels(), options.conv_channels(), kKernelVolume);
}

torch::Tensor LunaBlockImpl::forward(const torch::Tensor& input) {
  return maxpool(relu2(conv2(relu1(conv1(input)))));
}

// Module is a virtual base (of Cloneable): this class, the most derived, copies it itself, or
// it would start without the block's layers.
BlockedLunaBlockImpl::BlockedLunaBlockImpl(const LunaBlockImpl& block, bool dense_output)
    : torch::nn::Module(block), LunaBlockImpl(block), dense_output_(dense_output) {}

torch::Tensor BlockedLunaBlockImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.device().is_cpu() &&
                  (input.scalar_type() == torch::kFloat || input.scalar_type() == torch::kBFloat16),
              "BlockedLunaBlock runs on float or bfloat16 CPU tensors, got ", input.scalar_type(), " on ",
              input.device());
  // Dense input is cast to the weights' dtype in the same pass that reorders it.
  auto x = relu1(packed_conv1_.forward(*conv1, input.is_mkldnn() ? input : input.to_mkldnn(conv1->weight.scalar_type())));
  x = relu2(packed_conv2_.forward(*conv2, x));
  x = maxpool(x);
  return dense_output_ ? x.to_dense(torch::kFloat) : x;
}

Int8LunaBlockImpl::Int8LunaBlockImpl(const LunaBlockImpl& block)
    : torch::nn::Module(block), LunaBlockImpl(block), int8_conv1_(conv1), int8_conv2_(conv2) {}

torch::Tensor Int8LunaBlockImpl::forward(const torch::Tensor& input) {
  return maxpool(relu2(int8_conv2_(relu1(int8_conv1_(input)))));
}

void Int8LunaBlockImpl::finish_calibration() {
  int8_conv1_->finish_calibration();
  int8_conv2_->finish_calibration();
}

}  // namespace dlwpt
