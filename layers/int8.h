#pragma once

// int8 convolutions for inference (post-training static quantization), computed by oneDNN's
// int8 kernels (VNNI or AMX where the CPU has them). oneDNN stays inside layers/int8.cpp;
// a build without it (no libdnnl-dev, or a libtorch whose oneDNN differs) still compiles this
// header, and int8_unsupported_reason() then says so.

#include <limits>
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "dlwpt/layers/inference.h"

namespace dlwpt {

/// Why int8 convolutions cannot run in this build or on this CPU, or nullopt when they can.
std::optional<std::string> int8_unsupported_reason();

/// The smallest and largest value a layer's input took while it was calibrated.
struct ActivationRange {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();

  bool empty() const { return !(min <= max); }
  /// Widens the range to take in `values` (finite ones; a NaN or an infinity throws).
  void observe(const torch::Tensor& values);
};

class Int8ConvolutionKernel;  // oneDNN primitives per input shape, in int8.cpp

/// What the int8 layers (Int8Conv2d, Int8Conv3d, Int8SubpixelConvTranspose2d) share:
/// calibration, then int8 compute. The input is quantized per tensor with the scale its
/// calibrated range gives (unsigned 8 bits for an input that never went below zero, such as a
/// ReLU's output, where the CPU has VNNI; signed otherwise, which oneDNN computes without
/// overflow on any x86-64 CPU); values beyond the range saturate. Weights are quantized per
/// output channel (signed 8 bits, scale max|w| / 127). Products are summed in int32 and scaled back to float32 with the bias added:
/// the output is not requantized, so the layers after it (instance and batch norms, which
/// would magnify an 8-bit output's rounding in its quieter channels) see float32.
class Int8Convolution {
 public:
  virtual ~Int8Convolution() = default;

  /// True until finish_calibration(): forward() computes in float32 and records its input's
  /// range. Not thread-safe while calibrating.
  bool calibrating() const { return kernel_ == nullptr; }
  const ActivationRange& input_range() const { return input_range_; }
  /// Ends calibration: from now on forward() computes in int8.
  virtual void finish_calibration() = 0;

 protected:
  Int8Convolution() = default;
  void observe(const torch::Tensor& input) { input_range_.observe(input); }
  // Quantizes `weight` (the layer's, shared) for the calibrated input range; ConfigError when
  // nothing was observed or int8 cannot run here.
  void finish(const torch::Tensor& weight, const torch::Tensor& bias, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups,
              const std::string& layer);
  // What a clone keeps: `other`'s range, and its int8 compute when `other` has finished.
  void calibrate_as(const Int8Convolution& other) {
    input_range_ = other.input_range_;
    if (!other.calibrating()) finish_calibration();
  }
  torch::Tensor run(const torch::Tensor& input, const torch::Tensor& weight) const;

 private:
  ActivationRange input_range_;
  std::shared_ptr<Int8ConvolutionKernel> kernel_;
};

/// A convolution layer (`Layer`: torch::nn::Conv2d or Conv3d) computing in int8 after
/// calibration (see Int8Convolution): made from such a layer (any variant), sharing its
/// parameters, so the state_dict reads the same. Takes and gives float32 N x C x spatial
/// tensors (its output channels-last). Zero padding, no groups or dilation (`is_compatible`).
/// If the weight changes after calibration, its quantized copy follows; a clone keeps the
/// calibration.
template <typename Derived, typename Layer>
class Int8ConvolutionVariant : public LayerVariant<Derived, Layer>, public Int8Convolution {
 public:
  using Options = decltype(Layer::Impl::options);

  explicit Int8ConvolutionVariant(const Layer& layer);

  static bool is_compatible(const Options& options);

  torch::Tensor forward(const torch::Tensor& input);
  void finish_calibration() override;

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override;
};

class Int8Conv2dImpl : public Int8ConvolutionVariant<Int8Conv2dImpl, torch::nn::Conv2d> {
 public:
  explicit Int8Conv2dImpl(const torch::nn::Conv2d& layer) : torch::nn::Module(*layer), Int8ConvolutionVariant(layer) {}
};

TORCH_MODULE(Int8Conv2d);

class Int8Conv3dImpl : public Int8ConvolutionVariant<Int8Conv3dImpl, torch::nn::Conv3d> {
 public:
  explicit Int8Conv3dImpl(const torch::nn::Conv3d& layer) : torch::nn::Module(*layer), Int8ConvolutionVariant(layer) {}
};

TORCH_MODULE(Int8Conv3d);

/// A SubpixelConvTranspose2d (made from a compatible ConvTranspose2d, sharing its parameters)
/// whose sub-pixel convolution computes in int8 after calibration, as Int8Conv2d does: the
/// CycleGAN's upsampling layers. Output float32, channels as ConvTranspose2d gives them.
class Int8SubpixelConvTranspose2dImpl : public SubpixelConvTranspose2dImpl, public Int8Convolution {
 public:
  explicit Int8SubpixelConvTranspose2dImpl(const torch::nn::ConvTranspose2d& layer)
      : torch::nn::Module(*layer), SubpixelConvTranspose2dImpl(layer) {}

  void finish_calibration() override;

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override;

 protected:
  torch::Tensor convolve_phases(const torch::Tensor& padded_input, const torch::Tensor& weight,
                                const torch::Tensor& bias) override;
};

TORCH_MODULE(Int8SubpixelConvTranspose2d);

}  // namespace dlwpt
