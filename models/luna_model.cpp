#include "dlwpt/models/luna_model.h"

#include "dlwpt/layers/init.h"
#include "dlwpt/layers/state_numel.h"

namespace dlwpt {

namespace nn = torch::nn;

namespace {

constexpr int64_t kBlocks = 4;
constexpr int64_t kPoolingFactor = int64_t{1} << kBlocks;  // each LunaBlock halves every side
constexpr int64_t kClasses = 2;

// block<index+1>: conv_channels for the first, then twice the previous block's channels.
LunaBlockOptions block_options(const LunaModelOptions& options, int64_t index) {
  const int64_t c = options.conv_channels();
  const int64_t in = index == 0 ? options.in_channels() : c << (index - 1);
  return LunaBlockOptions(in, c << index);
}

int64_t head_features(const LunaModelOptions& options) {
  int64_t features = options.conv_channels() << (kBlocks - 1);
  for (int64_t side : options.chunk_size()) features *= side / kPoolingFactor;
  return features;
}

}  // namespace

LunaModelImpl::LunaModelImpl(const LunaModelOptions& options_) : options(options_) { reset(); }

void LunaModelImpl::reset() {
  TORCH_CHECK(options.in_channels() > 0, "LunaModel: in_channels must be positive, got ",
              options.in_channels());
  TORCH_CHECK(options.conv_channels() > 0, "LunaModel: conv_channels must be positive, got ",
              options.conv_channels());
  for (int64_t side : options.chunk_size()) {
    TORCH_CHECK(side > 0 && side % kPoolingFactor == 0,
                "LunaModel: every chunk_size side must be a positive multiple of ",
                kPoolingFactor, ", got ", torch::IntArrayRef(options.chunk_size()));
  }
  // Python writes BatchNorm3d(1), right for its one input channel; sized by in_channels here
  // so that other channel counts work too (the keys are the same).
  tail_batchnorm = register_module("tail_batchnorm", nn::BatchNorm3d(options.in_channels()));
  block1 = register_module("block1", LunaBlock(block_options(options, 0)));
  block2 = register_module("block2", LunaBlock(block_options(options, 1)));
  block3 = register_module("block3", LunaBlock(block_options(options, 2)));
  block4 = register_module("block4", LunaBlock(block_options(options, 3)));
  head_linear = register_module("head_linear", nn::Linear(head_in_features(), kClasses));
  init_weights_as_book(*this);
}

int64_t LunaModelImpl::head_in_features() const { return head_features(options); }

int64_t LunaModelImpl::state_numel(const LunaModelOptions& options) {
  int64_t values = batch_norm_state_numel(options.in_channels()) +
                   linear_state_numel(head_features(options), kClasses);
  for (int64_t index = 0; index < kBlocks; ++index) {
    values += LunaBlockImpl::state_numel(block_options(options, index));
  }
  return values;
}

LunaModelOutput LunaModelImpl::forward(const torch::Tensor& input_batch) {
  TORCH_CHECK(input_batch.dim() == 5 && input_batch.size(1) == options.in_channels(),
              "LunaModel expects an N x ", options.in_channels(), " x D x H x W input, got ",
              input_batch.sizes());
  TORCH_CHECK(input_batch.sizes().slice(2) == torch::IntArrayRef(options.chunk_size()),
              "LunaModel was built for ", torch::IntArrayRef(options.chunk_size()), " chunks, got ",
              input_batch.sizes());
  const auto block_out = block4(block3(block2(block1(tail_batchnorm(input_batch)))));
  auto logits = head_linear(block_out.flatten(1));
  auto probabilities = torch::softmax(logits, 1);
  return {logits, probabilities};
}

}  // namespace dlwpt
