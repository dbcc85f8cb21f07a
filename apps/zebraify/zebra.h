#pragma once

#include <functional>
#include <string>

#include <torch/types.h>

#include "apps/common/image_io.h"
#include "dlwpt/models/inference.h"

namespace dlwpt::zebraify {

// The pipeline works on the apps' shared image type, and reports bad images as they do.
using apps::ImageError;
using apps::RgbImage;

// The image pipeline of the book's chapter 2, in functions the tests check one by one:
//   RGB pixels --to_tensor--> 1 x 3 x H x W in [0, 1] (torchvision's ToTensor)
//     --resize_to_fit--> longer side at most `size` (bilinear, antialiased; never enlarges)
//     --pad_to_multiple--> H and W multiples of 4 by reflection (the generator halves twice)
//     --generator--> [-1, 1] (tanh) --crop, (y + 1) / 2, clamp--> [0, 1] --to_image--> RGB.

/// The generator downsamples twice by 2, so it needs sides divisible by 4 to give back the
/// input size, and at least 8 pixels so that its reflection paddings fit at the bottleneck.
constexpr int64_t kSideMultiple = 4;
constexpr int64_t kMinSide = 8;
/// Default bound of the longer side: a 512 x 384 photo takes about a second here.
constexpr int64_t kDefaultSize = 512;

/// 1 x 3 x H x W float32 in [0, 1].
torch::Tensor to_tensor(const RgbImage& image);
/// Rounds 1 x 3 x H x W (or 3 x H x W) values in [0, 1] (clamped) to 8-bit RGB.
RgbImage to_image(const torch::Tensor& image01);

/// Scales down so that the longer side is at most `max_side`, keeping the aspect ratio
/// (each side rounded, at least 1); `max_side` 0, or an image already small enough, is
/// returned unchanged.
torch::Tensor resize_to_fit(const torch::Tensor& batch, int64_t max_side);
/// Reflect-pads the bottom and right so that H and W become multiples of `multiple`.
torch::Tensor pad_to_multiple(const torch::Tensor& batch, int64_t multiple);

/// An image as the generator takes it (`prepare_image`): resized, in [0, 1], reflect-padded
/// to multiples of 4; `height` x `width` is the resized size the output is cropped back to.
struct PreparedImage {
  torch::Tensor padded;
  int64_t height = 0;
  int64_t width = 0;
};
/// The stages of Zebraifier::convert before and after the generator, for callers that run it
/// elsewhere (dlwpt-serve's model thread). ImageError for an image smaller than kMinSide.
PreparedImage prepare_image(const RgbImage& image, int64_t max_side);
RgbImage finish_image(const torch::Tensor& output01, const PreparedImage& prepared);

enum class Engine { native, jit };
Engine engine_from_string(const std::string& name);

/// How an archive's forward maps its input, told from its tensor names: `plain`, the
/// generator itself ([0, 1] in, tanh out); `book_wrapper`, the book's traced wrapper around
/// a generator held as `model`, whose forward is `model(x * 255) / 2 + 0.5` on a [0, 1] input.
enum class Convention { plain, book_wrapper };

/// A CycleGAN generator ready to turn horses into zebras, by either engine, over the whole
/// pipeline above.
class Zebraifier {
 public:
  /// Loads a TorchScript archive: a converted horse2zebra (tools/convert.py, tools/fetch.py)
  /// or the book's traced wrapper. The native engine loads it strictly into ResNetGenerator;
  /// the jit engine runs it through torch::jit::load.
  /// `precision` is the native engine's (models/inference.h); the jit engine runs float32.
  static Zebraifier from_archive(const std::string& path, Engine engine,
                                 Precision precision = Precision::float32);
  /// A ResNetGenerator with default options and seeded random (untrained) weights.
  static Zebraifier untrained(uint64_t seed, Precision precision = Precision::float32);

  /// int8 only: sets each convolution's input range from `pictures` (converted as convert()
  /// does, in float32), then switches the generator to int8. Until then an int8 Zebraifier
  /// refuses to convert (ConfigError): its scales would be unknown.
  void calibrate(const std::vector<RgbImage>& pictures, int64_t max_side);
  bool needs_calibration() const { return static_cast<bool>(finish_calibration_); }

  /// Generator stage: 1 x 3 x H x W in [0, 1] (H, W multiples of 4) to [0, 1], unclamped.
  torch::Tensor forward(const torch::Tensor& image01) const;
  /// The whole pipeline on pixels, with the longer side bounded by `max_side` (0: as is).
  RgbImage convert(const RgbImage& image, int64_t max_side) const;

  bool trained() const { return trained_; }
  /// "native engine, pretrained/horse2zebra.pt" or "native engine, UNTRAINED seeded weights".
  const std::string& description() const { return description_; }

 private:
  void forward_ready() const;  // ConfigError while int8 awaits calibration
  torch::Tensor run(const torch::Tensor& image01) const;
  RgbImage run_pipeline(const RgbImage& image, int64_t max_side) const;

  std::function<torch::Tensor(const torch::Tensor&)> forward_;
  std::function<void()> finish_calibration_;  // set while an int8 generator awaits calibration
  bool trained_ = false;
  std::string description_;
};

}  // namespace dlwpt::zebraify
