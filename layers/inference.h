#pragma once

// Building blocks of fast CPU inference, exact up to float rounding: the layers that
// `optimize_for_inference` (models/inference.h) puts in place of the book's layers, and the
// helpers it uses. The models' own `forward()` never takes these paths by itself. What each
// one buys is measured by `tools/dev.sh bench` (see README).

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/padding.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace dlwpt {

/// The `Alternative` a layer option's variant holds, or null. Options hold padding and padding
/// mode as variants: c10::variant in libtorch 1.x, std::variant in 2.x; with std::get_if in
/// scope, argument-dependent lookup finds the right get_if for either.
template <typename Alternative, typename Variant>
const Alternative* alternative_of(const Variant& value) {
  using std::get_if;
  return get_if<Alternative>(&value);
}

/// The device of a module's parameters (and buffers): where its inputs must go. CPU for a
/// module without any.
torch::Device device_of(const torch::nn::Module& module);

/// `forward` applied to each sample of `input` (as a batch of one), the results concatenated
/// along the batch. On CPU one sample at a time is the fastest per sample: its activations
/// stay in cache (measured here: 8 U-Net slices of 512x512 take 1.49 s as one batch, 8 x 75 ms
/// one by one; 32 LunaModel chunks 255 ms against 32 x 3.9 ms), and peak memory is one
/// sample's.
torch::Tensor for_each_sample(const torch::Tensor& input,
                              const std::function<torch::Tensor(const torch::Tensor&)>& forward);

/// Lets the C library keep freed memory for the next allocation instead of handing it back to
/// the system. Inference allocates and frees the same large activations on every call, and
/// memory fresh from the system costs a page fault per 4 KiB page: measured here, LunaModel at
/// batch 1 takes 3.8 ms instead of 7.0 ms, the U-Net 69 ms instead of 99 ms per 512x512
/// slice. The process keeps its peak heap until it exits. Call once at start-up (the apps do);
/// a no-op outside glibc.
void keep_freed_memory_for_reuse();

/// A tensor derived from a parameter (a re-laid-out weight), derived again only when the
/// parameter changes: an assignment brings another tensor, an in-place update (an optimizer
/// step, `load_state_dict`) bumps its version counter. Parameters created inside
/// `torch::InferenceMode` have no version counter, so for them nothing is cached. Thread-safe;
/// copies start empty.
class DerivedTensor {
 public:
  using Derive = std::function<torch::Tensor(const torch::Tensor&)>;

  DerivedTensor() = default;
  DerivedTensor(const DerivedTensor&) {}
  DerivedTensor& operator=(const DerivedTensor&) { return *this; }

  /// `derive(source)`, from the cache when `source` has not changed since the last call.
  torch::Tensor get(const torch::Tensor& source, const Derive& derive);

 private:
  std::mutex mutex_;
  torch::Tensor source_;  // held, so that no other tensor can take its place in memory
  const void* source_data_ = nullptr;
  uint32_t source_version_ = 0;
  torch::Tensor derived_;
};

/// The base of a layer that computes what a `Layer` (a module holder such as
/// torch::nn::Conv2d) computes, in another way, with its parameters: made from such a layer
/// (sharing them, so that a state_dict reads the same), and cloned as itself (with copies),
/// so that a Sequential holding it clones. Module is a virtual base: `Derived`, the most
/// derived class, must construct it from the layer too.
template <typename Derived, typename Layer>
class LayerVariant : public Layer::Impl {
 public:
  explicit LayerVariant(const Layer& layer) : Layer::Impl(*layer) {}

  std::shared_ptr<torch::nn::Module> clone(
      const torch::optional<torch::Device>& device = torch::nullopt) const override {
    return std::make_shared<Derived>(
        Layer(std::dynamic_pointer_cast<typename Layer::Impl>(Layer::Impl::clone(device))));
  }
};

/// ConvTranspose2d as a stride-1 convolution that computes the stride x stride output phases
/// as channels, interleaved by pixel_shuffle (sub-pixel convolution). The same products and
/// sums as the transposed convolution, but through ATen's fast (oneDNN) convolution instead of
/// its slow col2im path. Made from a ConvTranspose2d with equal strides, no groups or dilation
/// and zero padding (`is_compatible`); the sub-pixel weight is derived from the layer's again
/// whenever it changes. Called through its own type (its holder, an AnyModule or a
/// Sequential) it computes by sub-pixel convolution; through ConvTranspose2dImpl, plainly.
class SubpixelConvTranspose2dImpl
    : public LayerVariant<SubpixelConvTranspose2dImpl, torch::nn::ConvTranspose2d> {
 public:
  explicit SubpixelConvTranspose2dImpl(const torch::nn::ConvTranspose2d& layer);

  /// Whether a layer with these options can run as a sub-pixel convolution.
  static bool is_compatible(const decltype(torch::nn::ConvTranspose2dImpl::options)& options);

  /// N x in x H x W to N x out x H' x W', H' and W' as ConvTranspose2d computes them.
  torch::Tensor forward(const torch::Tensor& input);

 protected:
  /// The stride-1 convolution of the padded input with the sub-pixel weight and bias, whose
  /// outputs pixel_shuffle interleaves: what a variant (such as the int8 one) computes its own
  /// way.
  virtual torch::Tensor convolve_phases(const torch::Tensor& padded_input, const torch::Tensor& weight,
                                        const torch::Tensor& bias);
  /// The layer's weight (bias) regrouped for the sub-pixel convolution, derived again only
  /// when the layer's changes. An undefined tensor for a layer without bias.
  torch::Tensor subpixel_weight();
  torch::Tensor subpixel_bias();

 private:
  DerivedTensor subpixel_weight_;
  DerivedTensor subpixel_bias_;
};

TORCH_MODULE(SubpixelConvTranspose2d);

/// Conv2d over channels-last activations: an input in another memory format is copied into
/// channels-last first. Put in place of a network's convolutions, that copy happens once, at
/// its entrance; every activation after it is channels-last, so that oneDNN runs each
/// convolution without reordering its input and output.
class ChannelsLastConv2dImpl : public LayerVariant<ChannelsLastConv2dImpl, torch::nn::Conv2d> {
 public:
  explicit ChannelsLastConv2dImpl(const torch::nn::Conv2d& layer);

  torch::Tensor forward(const torch::Tensor& input);
};

TORCH_MODULE(ChannelsLastConv2d);

/// ReflectionPad2d for inference in any dtype: float32 and bfloat16 batches padded alike on
/// all four sides one plane at a time (`reflection_pad_planes`, layers/fused_instance_norm.h),
/// any other input by gathering rows and columns (index_select). ATen 1.13 has no bfloat16
/// kernel for reflection padding and a slower float32 one. The same values as ReflectionPad2d
/// (a copy).
class FastReflectionPad2dImpl
    : public LayerVariant<FastReflectionPad2dImpl, torch::nn::ReflectionPad2d> {
 public:
  explicit FastReflectionPad2dImpl(const torch::nn::ReflectionPad2d& layer);

  torch::Tensor forward(const torch::Tensor& input);
};

TORCH_MODULE(FastReflectionPad2d);

/// The padding of each side when a ReflectionPad2d pads all four alike, else nullopt.
std::optional<int64_t> uniform_padding(const torch::nn::ReflectionPad2dOptions& options);

/// Conv3d over tensors in oneDNN's blocked layout (`Tensor::to_mkldnn()`), with the weight
/// reordered into that layout once instead of on every call.
class PackedConv3d {
 public:
  torch::Tensor forward(const torch::nn::Conv3dImpl& layer, const torch::Tensor& mkldnn_input);

 private:
  DerivedTensor weight_;
};

}  // namespace dlwpt
