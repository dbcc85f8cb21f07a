#pragma once

// Closed-form counts of the values a layer keeps in its state_dict (parameters and buffers):
// what a model's `state_numel(options)` adds up, so that the size of a model a configuration
// describes is known before anything is allocated. tests/keys_test.cpp compares every model's
// count with its real modules.

#include <cstdint>

namespace dlwpt {

/// A convolution (any dimension, transposed or not) with bias: weight in x out x kernel_volume
/// (ConvTranspose stores out x in, the same count) and bias out.
inline int64_t conv_state_numel(int64_t in_channels, int64_t out_channels, int64_t kernel_volume) {
  return in_channels * out_channels * kernel_volume + out_channels;
}

/// Linear with bias.
inline int64_t linear_state_numel(int64_t in_features, int64_t out_features) {
  return in_features * out_features + out_features;
}

/// BatchNorm (affine, tracking running statistics): weight, bias, running_mean and running_var
/// of `features` each, and the scalar num_batches_tracked.
inline int64_t batch_norm_state_numel(int64_t features) { return 4 * features + 1; }

}  // namespace dlwpt
