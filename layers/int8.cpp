#include "dlwpt/layers/int8.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <type_traits>
#include <mutex>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "dlwpt/weights/errors.h"

#if DLWPT_WITH_ONEDNN_INT8
#include <dnnl.hpp>
#endif

namespace dlwpt {

namespace nn = torch::nn;

void ActivationRange::observe(const torch::Tensor& values) {
  if (values.numel() == 0) return;
  const auto [low, high] = torch::aminmax(values.detach().to(torch::kFloat));
  const float lowest = low.item<float>();
  const float highest = high.item<float>();
  if (!std::isfinite(lowest) || !std::isfinite(highest)) {
    throw ConfigError("int8 calibration: an input holds NaN or infinite values");
  }
  min = std::min(min, lowest);
  max = std::max(max, highest);
}

#if DLWPT_WITH_ONEDNN_INT8

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DataType = memory::data_type;

// Where VNNI (or AMX) multiplies unsigned by signed bytes, an unsigned input uses all 8 bits.
// Older CPUs multiply byte pairs into 16 bits, which unsigned inputs can overflow; oneDNN
// avoids that for signed inputs only.
bool unsigned_inputs_are_exact() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2_vnni:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
      return true;
    default:
      return false;
  }
}

memory::dims dims_of(c10::IntArrayRef sizes) { return memory::dims(sizes.begin(), sizes.end()); }

}  // namespace

struct Int8Geometry {
  std::vector<int64_t> stride;
  std::vector<int64_t> padding;
  std::vector<int64_t> dilation;
  int64_t groups = 1;
};

class Int8ConvolutionKernel {
 public:
  Int8ConvolutionKernel(Int8Geometry geometry, const ActivationRange& range, const torch::Tensor& bias)
      : geometry_(std::move(geometry)), bias_(bias) {
    unsigned_input_ = range.min >= 0 && unsigned_inputs_are_exact();
    const float largest = unsigned_input_ ? range.max : std::max(std::abs(range.min), std::abs(range.max));
    input_scale_ = largest > 0 ? largest / (unsigned_input_ ? 255.0f : 127.0f) : 1.0f;
  }

  torch::Tensor run(const torch::Tensor& input, const torch::Tensor& weight) {
    const auto format = input.dim() == 5 ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::ChannelsLast;
    const auto source = input.to(torch::kFloat).contiguous(format);
    const std::shared_ptr<const Prepared> prepared = prepared_for(input.sizes(), weight);
    const dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    // Quantized by a oneDNN reorder: ATen's quantize_per_tensor runs on one thread, and took
    // longer than the convolution itself.
    auto quantized = torch::empty({static_cast<int64_t>(prepared->descriptor.src_desc().get_size())}, torch::kByte);
    memory float_source(prepared->float_source, engine, source.data_ptr());
    memory quantized_source(prepared->descriptor.src_desc(), engine, quantized.data_ptr());
    prepared->quantize.execute(stream, float_source, quantized_source);
    auto output = torch::empty(dims_of(prepared->descriptor.dst_desc().dims()),
                               torch::TensorOptions(torch::kFloat).memory_format(format));
    auto scratchpad = torch::empty({static_cast<int64_t>(prepared->descriptor.scratchpad_desc().get_size())},
                                   torch::kByte);
    prepared->primitive.execute(
        stream, {{DNNL_ARG_SRC, quantized_source},
                 {DNNL_ARG_WEIGHTS, prepared->weights},
                 {DNNL_ARG_BIAS, prepared->bias},
                 {DNNL_ARG_DST, memory(prepared->descriptor.dst_desc(), engine, output.data_ptr())},
                 {DNNL_ARG_SCRATCHPAD, memory(prepared->descriptor.scratchpad_desc(), engine, scratchpad.data_ptr())}});
    stream.wait();
    return output;
  }

 private:
  // A primitive for one input shape, with the weights in the layout it wants.
  struct Prepared {
    memory::desc float_source;
    dnnl::reorder quantize;  // float_source to the convolution's source, times 1 / input scale
    dnnl::convolution_forward::primitive_desc descriptor;
    dnnl::convolution_forward primitive;
    torch::Tensor weight_storage;
    memory weights;
    torch::Tensor bias_storage;
    memory bias;
  };

  static const dnnl::engine& cpu_engine() {
    static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    return engine;
  }

  // The cached primitive for `sizes`, all of them made again when the weight has changed.
  std::shared_ptr<const Prepared> prepared_for(c10::IntArrayRef sizes, const torch::Tensor& weight) {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool weight_changed = !weight.is_same(weight_) || weight.data_ptr() != weight_data_ ||
                                (!weight.is_inference() && weight._version() != weight_version_);
    if (weight_changed) {
      prepared_.clear();
      weight_ = weight;
      weight_data_ = weight.data_ptr();
      weight_version_ = weight.is_inference() ? 0 : weight._version();
    }
    const std::vector<int64_t> key(sizes.begin(), sizes.end());
    auto& slot = prepared_[key];
    if (!slot) slot = prepare(sizes, weight);
    return slot;
  }

  std::shared_ptr<const Prepared> prepare(c10::IntArrayRef sizes, const torch::Tensor& weight) const {
    const bool volumetric = sizes.size() == 5;
    const Tag activation_tag = volumetric ? Tag::ndhwc : Tag::nhwc;
    const Tag weight_tag = volumetric ? Tag::oidhw : Tag::oihw;
    const auto float_weight = weight.detach().to(torch::kFloat).contiguous();
    const int64_t out_channels = float_weight.size(0);
    // Per output channel: the weight's scale, and the scale of its int32 sums back to float.
    std::vector<int64_t> per_output_channel;
    for (int64_t d = 1; d < float_weight.dim(); ++d) per_output_channel.push_back(d);
    const auto weight_scales =
        (float_weight.abs().amax(per_output_channel) / 127.0f).clamp_min(std::numeric_limits<float>::min());
    const auto output_scales = (weight_scales * input_scale_).contiguous();

    memory::dims output_dims{sizes[0], out_channels};
    for (size_t d = 2; d < sizes.size(); ++d) {
      const auto k = (float_weight.size(static_cast<int64_t>(d)) - 1) * geometry_.dilation[d - 2] + 1;
      output_dims.push_back((sizes[d] + 2 * geometry_.padding[d - 2] - k) / geometry_.stride[d - 2] + 1);
    }
    memory::dims dilation;
    for (const auto d : geometry_.dilation) dilation.push_back(d - 1);  // oneDNN counts from 0

    const memory::desc source(dims_of(sizes), unsigned_input_ ? DataType::u8 : DataType::s8, activation_tag);
    const memory::desc weights_any(dims_of(float_weight.sizes()), DataType::s8, Tag::any);
    const memory::desc bias_desc({out_channels}, DataType::f32, Tag::x);
    const memory::desc destination(output_dims, DataType::f32, activation_tag);
    dnnl::primitive_attr attributes;
    attributes.set_output_scales(1 << 1, std::vector<float>(output_scales.data_ptr<float>(),
                                                            output_scales.data_ptr<float>() + out_channels));
    attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::convolution_forward::desc description(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, source, weights_any, bias_desc,
        destination, dims_of(geometry_.stride), dilation, dims_of(geometry_.padding), dims_of(geometry_.padding));
    const dnnl::engine& engine = cpu_engine();
    auto result = std::make_shared<Prepared>();
    result->descriptor = dnnl::convolution_forward::primitive_desc(description, attributes, engine);
    result->primitive = dnnl::convolution_forward(result->descriptor);
    result->float_source = memory::desc(dims_of(sizes), DataType::f32, activation_tag);
    dnnl::primitive_attr scale_input;
    scale_input.set_output_scales(0, {1.0f / input_scale_});
    result->quantize = dnnl::reorder(dnnl::reorder::primitive_desc(engine, result->float_source, engine, source, scale_input));

    // The weights, quantized by a reorder into the primitive's layout (which, for signed
    // inputs, appends the compensation oneDNN needs).
    dnnl::primitive_attr quantize;
    const auto inverse_scales = weight_scales.reciprocal().contiguous();
    quantize.set_output_scales(1 << 0, std::vector<float>(inverse_scales.data_ptr<float>(),
                                                          inverse_scales.data_ptr<float>() + out_channels));
    memory float_weights({dims_of(float_weight.sizes()), DataType::f32, weight_tag}, engine, float_weight.data_ptr());
    result->weight_storage = torch::empty({static_cast<int64_t>(result->descriptor.weights_desc().get_size())}, torch::kByte);
    result->weights = memory(result->descriptor.weights_desc(), engine, result->weight_storage.data_ptr());
    dnnl::stream stream(engine);
    dnnl::reorder(float_weights, result->weights, quantize).execute(stream, float_weights, result->weights);
    stream.wait();

    // oneDNN adds the bias to the int32 sums before scaling them.
    result->bias_storage = bias_.defined() ? (bias_.detach().to(torch::kFloat) / output_scales).contiguous()
                                           : torch::zeros({out_channels}, torch::kFloat);
    result->bias = memory(bias_desc, engine, result->bias_storage.data_ptr());
    return result;
  }

  const Int8Geometry geometry_;
  const torch::Tensor bias_;
  bool unsigned_input_ = false;
  float input_scale_ = 1.0f;
  std::mutex mutex_;
  torch::Tensor weight_;  // held, so that no other tensor can take its place in memory
  const void* weight_data_ = nullptr;
  uint32_t weight_version_ = 0;
  std::map<std::vector<int64_t>, std::shared_ptr<const Prepared>> prepared_;
};

std::optional<std::string> int8_unsupported_reason() {
  const auto isa = dnnl::get_effective_cpu_isa();
  if (isa == dnnl::cpu_isa::sse41 || isa == dnnl::cpu_isa::avx) {
    return "oneDNN's int8 convolutions need AVX2 or AVX-512, which this CPU lacks: use float32";
  }
  return std::nullopt;
}

#else  // without oneDNN's headers

class Int8ConvolutionKernel {
 public:
  torch::Tensor run(const torch::Tensor&, const torch::Tensor&) {
    throw ConfigError("int8 inference: " + *int8_unsupported_reason());
  }
};

std::optional<std::string> int8_unsupported_reason() {
  return "this build has no oneDNN int8 kernels (it was configured without libdnnl-dev 2.x): use float32 "
         "or bfloat16";
}

#endif

void Int8Convolution::finish(const torch::Tensor& weight, const torch::Tensor& bias,
                             const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                             const std::vector<int64_t>& dilation, int64_t groups, const std::string& layer) {
  if (const auto reason = int8_unsupported_reason()) throw ConfigError("int8 inference: " + *reason);
  if (input_range_.empty()) {
    throw ConfigError("int8 calibration: " + layer + " saw no input; run calibration inputs through the model "
                      "before finishing its calibration");
  }
  if (!weight.device().is_cpu()) throw ConfigError("int8 inference runs on the CPU; " + layer + " is not");
#if DLWPT_WITH_ONEDNN_INT8
  kernel_ = std::make_shared<Int8ConvolutionKernel>(Int8Geometry{stride, padding, dilation, groups}, input_range_,
                                                    bias);
#else
  (void)bias, (void)stride, (void)padding, (void)dilation, (void)groups;
#endif
}

torch::Tensor Int8Convolution::run(const torch::Tensor& input, const torch::Tensor& weight) const {
  return kernel_->run(input, weight);
}

namespace {

template <size_t D>
std::vector<int64_t> values_of(const torch::ExpandingArray<D>& array) {
  return std::vector<int64_t>(array->begin(), array->end());
}

// The spatial dimensions of a Conv2d or Conv3d, from its options' padding.
template <typename Options>
constexpr size_t spatial_dimensions() {
  return std::is_same_v<Options, decltype(nn::Conv2dImpl::options)> ? 2 : 3;
}

}  // namespace

template <typename Derived, typename Layer>
Int8ConvolutionVariant<Derived, Layer>::Int8ConvolutionVariant(const Layer& layer)
    : LayerVariant<Derived, Layer>(layer) {
  TORCH_CHECK(is_compatible(this->options), "int8 convolution: this layer has groups, dilation or a non-zero "
              "padding mode, which it does not support");
}

template <typename Derived, typename Layer>
bool Int8ConvolutionVariant<Derived, Layer>::is_compatible(const Options& options) {
  constexpr size_t D = spatial_dimensions<Options>();
  const auto dilation = values_of(options.dilation());
  return alternative_of<torch::ExpandingArray<D>>(options.padding()) != nullptr &&
         alternative_of<torch::enumtype::kZeros>(options.padding_mode()) != nullptr && options.groups() == 1 &&
         std::all_of(dilation.begin(), dilation.end(), [](int64_t d) { return d == 1; });
}

template <typename Derived, typename Layer>
torch::Tensor Int8ConvolutionVariant<Derived, Layer>::forward(const torch::Tensor& input) {
  constexpr size_t D = spatial_dimensions<Options>();
  TORCH_CHECK(input.dim() == static_cast<int64_t>(D) + 2, "int8 convolution expects a batch of ", D,
              "-D inputs, got ", input.sizes());
  if (calibrating()) {
    observe(input);
    return Layer::Impl::forward(input);
  }
  return run(input, this->weight);
}

template <typename Derived, typename Layer>
void Int8ConvolutionVariant<Derived, Layer>::finish_calibration() {
  constexpr size_t D = spatial_dimensions<Options>();
  const auto& options = this->options;
  finish(this->weight, this->bias, values_of(options.stride()),
         values_of(*alternative_of<torch::ExpandingArray<D>>(options.padding())), values_of(options.dilation()),
         options.groups(), D == 2 ? "a Conv2d" : "a Conv3d");
}

template <typename Derived, typename Layer>
std::shared_ptr<nn::Module> Int8ConvolutionVariant<Derived, Layer>::clone(
    const torch::optional<torch::Device>& device) const {
  auto copy = std::dynamic_pointer_cast<Derived>(LayerVariant<Derived, Layer>::clone(device));
  copy->calibrate_as(*this);
  return copy;
}

void Int8SubpixelConvTranspose2dImpl::finish_calibration() {
  finish(subpixel_weight(), subpixel_bias(), {1, 1}, {0, 0}, {1, 1}, 1, "a ConvTranspose2d");
}

torch::Tensor Int8SubpixelConvTranspose2dImpl::convolve_phases(const torch::Tensor& padded_input,
                                                               const torch::Tensor& weight, const torch::Tensor& bias) {
  if (calibrating()) {
    observe(padded_input);
    return SubpixelConvTranspose2dImpl::convolve_phases(padded_input, weight, bias);
  }
  return run(padded_input, weight);
}

std::shared_ptr<nn::Module> Int8SubpixelConvTranspose2dImpl::clone(const torch::optional<torch::Device>& device) const {
  const auto plain = std::dynamic_pointer_cast<nn::ConvTranspose2dImpl>(nn::ConvTranspose2dImpl::clone(device));
  auto copy = std::make_shared<Int8SubpixelConvTranspose2dImpl>(nn::ConvTranspose2d(plain));
  copy->calibrate_as(*this);
  return copy;
}

template class Int8ConvolutionVariant<Int8Conv2dImpl, nn::Conv2d>;
template class Int8ConvolutionVariant<Int8Conv3dImpl, nn::Conv3d>;

}  // namespace dlwpt
