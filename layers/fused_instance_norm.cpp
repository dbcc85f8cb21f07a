#include "dlwpt/layers/fused_instance_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <type_traits>

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/torch.h>

namespace dlwpt {

namespace {

// The plane loops are compiled for AVX-512, AVX2 and plain x86-64, the one this CPU runs
// chosen when the library loads: the build targets any x86-64, whose 16-byte vectors take
// several times as long as ATen's own (runtime-dispatched) normalization on the same data.
// Everything they call is inlined into each of these clones.
#if defined(__x86_64__) && defined(__GNUC__)
#define DLWPT_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define DLWPT_INLINED inline __attribute__((always_inline))
#else
#define DLWPT_CPU_CLONES
#define DLWPT_INLINED inline
#endif

// Float lanes summed side by side: each lane adds its own stride of the values, so the
// compiler vectorizes the loop without reassociating float additions.
constexpr int64_t kLanes = 16;

template <typename T, typename Term>
DLWPT_INLINED double sum_of(const T* values, int64_t count, const Term& term) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int64_t lane = 0; lane < kLanes; ++lane) lanes[lane] += term(static_cast<float>(values[i + lane]));
  }
  double total = 0;
  for (; i < count; ++i) total += term(static_cast<float>(values[i]));
  for (const float lane : lanes) total += lane;
  return total;
}

// One N x C plane: H rows of W values, `row_stride` apart.
template <typename T>
struct Plane {
  const T* data;
  int64_t height;
  int64_t width;
  int64_t row_stride;

  const T* row(int64_t index) const { return data + index * row_stride; }
};

struct Normalization {
  float mean;
  float inverse_std;
};

// Mean and biased variance, as InstanceNorm2d normalizes with them: two passes over the plane
// (it is in cache for the second), float lanes within a row, rows added in double.
template <typename T>
DLWPT_INLINED Normalization normalization_of(const Plane<T>& plane, double eps) {
  const double count = static_cast<double>(plane.height * plane.width);
  double sum = 0;
  for (int64_t y = 0; y < plane.height; ++y) {
    sum += sum_of(plane.row(y), plane.width, [](float value) { return value; });
  }
  const auto mean = static_cast<float>(sum / count);
  double squares = 0;
  for (int64_t y = 0; y < plane.height; ++y) {
    squares += sum_of(plane.row(y), plane.width, [mean](float value) { return (value - mean) * (value - mean); });
  }
  return {mean, static_cast<float>(1.0 / std::sqrt(squares / count + eps))};
}

// The reflected index of `index` (in -size < index < 2 * size - 1) in 0..size-1.
DLWPT_INLINED int64_t reflected(int64_t index, int64_t size) {
  if (index < 0) return -index;
  return index < size ? index : 2 * (size - 1) - index;
}

// float to bfloat16, rounded to the nearest even as c10::BFloat16 rounds, but without its
// branch, so that the compiler vectorizes the loops that store bfloat16.
template <typename T>
DLWPT_INLINED T stored(float value) {
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return c10::BFloat16(static_cast<uint16_t>(value != value ? 0x7FC0u : rounded), c10::BFloat16::from_bits());
  } else {
    return value;
  }
}

// One padded output row from one input row: the normalized values (through ReLU when asked),
// then the `padding` columns on each side mirrored from them.
template <typename T, bool kReLU>
DLWPT_INLINED void write_row(const T* source, T* target, int64_t width, int64_t padding, Normalization norm) {
  T* middle = target + padding;
  for (int64_t x = 0; x < width; ++x) {
    const float value = (static_cast<float>(source[x]) - norm.mean) * norm.inverse_std;
    middle[x] = stored<T>(kReLU ? std::max(value, 0.0f) : value);
  }
  for (int64_t k = 1; k <= padding; ++k) {
    middle[-k] = middle[k];
    middle[width - 1 + k] = middle[width - 1 - k];
  }
}

// What one pass over the planes computes: the fused layers, or (normalize false) the padding
// alone, whose values (x - 0) * 1 are the input's exactly.
struct PlanePass {
  bool normalize;
  bool relu;
  int64_t padding;
  double eps;
};

template <typename T>
DLWPT_INLINED void normalize_plane(const Plane<T>& plane, T* output, const PlanePass& options) {
  const Normalization norm = options.normalize ? normalization_of(plane, options.eps) : Normalization{0.0f, 1.0f};
  const int64_t padding = options.padding;
  const int64_t output_width = plane.width + 2 * padding;
  for (int64_t y = 0; y < plane.height + 2 * padding; ++y) {
    const T* source = plane.row(reflected(y - padding, plane.height));
    T* target = output + y * output_width;
    if (options.relu) {
      write_row<T, true>(source, target, plane.width, padding, norm);
    } else {
      write_row<T, false>(source, target, plane.width, padding, norm);
    }
  }
}

DLWPT_CPU_CLONES void normalize_float_plane(const Plane<float>& plane, float* output, const PlanePass& options) {
  normalize_plane(plane, output, options);
}

DLWPT_CPU_CLONES void normalize_bfloat16_plane(const Plane<c10::BFloat16>& plane, c10::BFloat16* output,
                                               const PlanePass& options) {
  normalize_plane(plane, output, options);
}

void normalize_any_plane(const Plane<float>& plane, float* output, const PlanePass& options) {
  normalize_float_plane(plane, output, options);
}

void normalize_any_plane(const Plane<c10::BFloat16>& plane, c10::BFloat16* output, const PlanePass& options) {
  normalize_bfloat16_plane(plane, output, options);
}

template <typename T>
void normalize_planes(const torch::Tensor& input, torch::Tensor& output, const PlanePass& options) {
  const int64_t channels = input.size(1);
  const int64_t output_plane = output.size(2) * output.size(3);
  const T* input_data = input.data_ptr<T>();
  T* output_data = output.data_ptr<T>();
  at::parallel_for(0, input.size(0) * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t n = index / channels;
      const int64_t c = index % channels;
      const Plane<T> plane{input_data + n * input.stride(0) + c * input.stride(1), input.size(2), input.size(3),
                           input.stride(2)};
      normalize_any_plane(plane, output_data + index * output_plane, options);
    }
  });
}

// The pass over every plane of `input` into a new contiguous tensor, padded.
torch::Tensor pass_over_planes(const torch::Tensor& input, const PlanePass& pass) {
  const torch::Tensor rows = input.stride(3) == 1 ? input : input.contiguous();
  auto output = torch::empty({input.size(0), input.size(1), input.size(2) + 2 * pass.padding,
                              input.size(3) + 2 * pass.padding},
                             input.options().memory_format(torch::MemoryFormat::Contiguous));
  if (input.scalar_type() == torch::kFloat) {
    normalize_planes<float>(rows, output, pass);
  } else {
    normalize_planes<c10::BFloat16>(rows, output, pass);
  }
  return output;
}

void check_reflection_padding(const torch::Tensor& input, int64_t padding, const char* what) {
  TORCH_CHECK(padding < input.size(2) && padding < input.size(3), what, ": reflection padding ", padding,
              " needs planes larger than it, got ", input.size(2), " x ", input.size(3));
}

}  // namespace

bool can_pass_over_planes(const torch::Tensor& input) {
  const bool float_type = input.scalar_type() == torch::kFloat || input.scalar_type() == torch::kBFloat16;
  const bool needs_gradient = input.requires_grad() && torch::GradMode::is_enabled();
  return input.dim() == 4 && input.device().is_cpu() && float_type && !needs_gradient;
}

torch::Tensor reflection_pad_planes(const torch::Tensor& input, int64_t padding) {
  TORCH_CHECK(can_pass_over_planes(input), "reflection_pad_planes takes a float32 or bfloat16 N x C x H x W CPU "
              "tensor that needs no gradient, got ", input.scalar_type(), " ", input.sizes());
  TORCH_CHECK(padding >= 0, "reflection_pad_planes: padding must be >= 0, got ", padding);
  check_reflection_padding(input, padding, "reflection_pad_planes");
  return pass_over_planes(input, {/*normalize=*/false, /*relu=*/false, padding, /*eps=*/0.0});
}

FusedInstanceNorm2dImpl::FusedInstanceNorm2dImpl(const FusedInstanceNorm2dOptions& options_)
    : options(options_) {
  reset();
}

void FusedInstanceNorm2dImpl::reset() {
  TORCH_CHECK(options.num_features() > 0, "FusedInstanceNorm2d: num_features must be positive, got ",
              options.num_features());
  TORCH_CHECK(options.eps() > 0, "FusedInstanceNorm2d: eps must be positive, got ", options.eps());
  TORCH_CHECK(options.reflection_padding() >= 0, "FusedInstanceNorm2d: reflection_padding must be >= 0, got ",
              options.reflection_padding());
}

torch::Tensor FusedInstanceNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.num_features(), "FusedInstanceNorm2d expects an N x ",
              options.num_features(), " x H x W input, got ", input.sizes());
  check_reflection_padding(input, options.reflection_padding(), "FusedInstanceNorm2d");
  // Instance statistics of a single value are refused by ATen's own check.
  if (!can_pass_over_planes(input) || input.size(2) * input.size(3) <= 1) return unfused(input);
  return pass_over_planes(input, {/*normalize=*/true, options.relu(), options.reflection_padding(), options.eps()});
}

torch::Tensor FusedInstanceNorm2dImpl::unfused(const torch::Tensor& input) const {
  auto result = torch::instance_norm(input, /*weight=*/{}, /*bias=*/{}, /*running_mean=*/{}, /*running_var=*/{},
                                     /*use_input_stats=*/true, /*momentum=*/0.1, options.eps(),
                                     /*cudnn_enabled=*/false);
  if (options.relu()) result = torch::relu(result);
  const int64_t padding = options.reflection_padding();
  if (padding > 0) {
    // ATen 1.13 has no bfloat16 reflection padding; padding only copies, so float is exact.
    const bool bfloat16 = result.scalar_type() == torch::kBFloat16;
    result = torch::reflection_pad2d(bfloat16 ? result.to(torch::kFloat) : result, {padding, padding, padding, padding});
    if (bfloat16) result = result.to(torch::kBFloat16);
  }
  return result;
}

void FusedInstanceNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "dlwpt::FusedInstanceNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", relu=" << (options.relu() ? "true" : "false") << ", reflection_padding=" << options.reflection_padding()
         << ")";
}

}  // namespace dlwpt
