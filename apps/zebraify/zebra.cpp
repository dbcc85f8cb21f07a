#include "apps/zebraify/zebra.h"

#include <cmath>

#include <torch/script.h>
#include <torch/torch.h>

#include "dlwpt/models/inference.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::zebraify {

namespace F = torch::nn::functional;

torch::Tensor to_tensor(const RgbImage& image) {
  TORCH_CHECK(!image.empty(), "to_tensor: empty image");
  return torch::from_blob(const_cast<uint8_t*>(image.planes.data()),
                          {1, 3, image.height, image.width}, torch::kUInt8)
      .to(torch::kFloat)
      .div_(255.0);
}

RgbImage to_image(const torch::Tensor& image01) {
  const auto chw = image01.dim() == 4 ? image01.squeeze(0) : image01;
  TORCH_CHECK(chw.dim() == 3 && chw.size(0) == 3, "to_image expects 3 x H x W, got ",
              image01.sizes());
  const auto bytes = (chw.clamp(0.0, 1.0) * 255.0).round().to(torch::kUInt8).contiguous();
  RgbImage image;
  image.height = chw.size(1);
  image.width = chw.size(2);
  image.planes.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return image;
}

torch::Tensor resize_to_fit(const torch::Tensor& batch, int64_t max_side) {
  TORCH_CHECK(max_side >= 0, "the size bound must be >= 0, got ", max_side);
  const int64_t height = batch.size(2);
  const int64_t width = batch.size(3);
  const int64_t longer = std::max(height, width);
  if (max_side == 0 || longer <= max_side) return batch;
  const double scale = static_cast<double>(max_side) / longer;
  const auto scaled = [scale](int64_t side) {
    return std::max<int64_t>(1, std::llround(side * scale));
  };
  return F::interpolate(batch, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{scaled(height), scaled(width)})
                                   .mode(torch::kBilinear)
                                   .align_corners(false)
                                   .antialias(true));
}

torch::Tensor pad_to_multiple(const torch::Tensor& batch, int64_t multiple) {
  const int64_t pad_bottom = (multiple - batch.size(2) % multiple) % multiple;
  const int64_t pad_right = (multiple - batch.size(3) % multiple) % multiple;
  if (pad_bottom == 0 && pad_right == 0) return batch;
  return F::pad(batch, F::PadFuncOptions({0, pad_right, 0, pad_bottom}).mode(torch::kReflect));
}

Engine engine_from_string(const std::string& name) {
  if (name == "native") return Engine::native;
  if (name == "jit") return Engine::jit;
  throw std::invalid_argument("unknown engine '" + name + "' (expected native or jit)");
}

namespace {

// Where the generator's own tensors start in an archive: "" for a generator, "model." when
// the book's wrapper holds it as `model`.
std::string generator_prefix(const weights::Archive& archive, const std::string& path) {
  const std::string marker = "model.1.weight";
  std::string found;
  int matches = 0;
  for (const auto& [name, tensor] : archive.tensors) {
    if (name.size() >= marker.size() &&
        name.compare(name.size() - marker.size(), marker.size(), marker) == 0) {
      found = name.substr(0, name.size() - marker.size());
      ++matches;
    }
  }
  if (matches != 1) {
    throw weights::ArchiveError("weights archive '" + path +
                                "' does not hold one CycleGAN ResNetGenerator (no single "
                                "'model.1.weight' tensor)");
  }
  return found;
}

// Options of a generator without a stored configuration, read off its tensors as
// tools/convert.py does.
ResNetGeneratorOptions infer_options(const weights::TensorMap& tensors, const std::string& prefix) {
  const auto& first = tensors.at(prefix + "model.1.weight");
  int64_t blocks = 0;
  while (tensors.count(prefix + "model." + std::to_string(10 + blocks) + ".conv_block.1.weight")) {
    ++blocks;
  }
  const auto& last = tensors.at(prefix + "model." + std::to_string(26 - 9 + blocks) + ".weight");
  return ResNetGeneratorOptions()
      .input_nc(first.size(1))
      .ngf(first.size(0))
      .output_nc(last.size(0))
      .n_blocks(blocks);
}

// The native generator's forward, and for int8 what ends its calibration.
struct NativeGenerator {
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::function<void()> finish_calibration;
};

NativeGenerator native_forward(ResNetGenerator generator, Convention convention, Precision precision) {
  NativeGenerator native;
  if (precision == Precision::int8) {
    generator = begin_int8_calibration(generator);  // calibrated on pictures later: calibrate()
    native.finish_calibration = [generator]() mutable { finish_int8_calibration(*generator); };
  } else {
    optimize_for_inference(generator, InferenceOptions().precision(precision));
  }
  // forward_each_sample: float32 in and out whatever the generator's precision.
  if (convention == Convention::book_wrapper) {
    native.forward = [generator](const torch::Tensor& x) mutable {
      return forward_each_sample(generator, x * 255.0) / 2 + 0.5;
    };
  } else {
    native.forward = [generator](const torch::Tensor& x) mutable { return (forward_each_sample(generator, x) + 1) / 2; };
  }
  return native;
}

std::string precision_note(Precision precision) {
  return precision == Precision::float32 ? "" : ", " + to_string(precision);
}

std::function<torch::Tensor(const torch::Tensor&)> jit_forward(const std::string& path,
                                                               Convention convention) {
  auto module = std::make_shared<torch::jit::Module>(torch::jit::load(path, torch::kCPU));
  module->eval();
  return [module, convention](const torch::Tensor& x) {
    const torch::Tensor y = module->forward({x}).toTensor();
    return convention == Convention::book_wrapper ? y : (y + 1) / 2;
  };
}

}  // namespace

Zebraifier Zebraifier::from_archive(const std::string& path, Engine engine, Precision precision) {
  if (engine == Engine::jit && precision != Precision::float32) {
    throw ConfigError("the jit engine runs the archive as it is, in float32: " + to_string(precision) +
                      " is for the native engine");
  }
  const weights::Archive archive = weights::read_archive(path);
  const std::string prefix = generator_prefix(archive, path);
  const Convention convention = prefix.empty() ? Convention::plain : Convention::book_wrapper;

  ResNetGeneratorOptions options;
  if (archive.model_config && convention == Convention::plain) {
    options = weights::resnet_generator_options(*archive.model_config);
    try {  // the configuration may describe a generator of any size: checked before building
      weights::check_fits<ResNetGenerator>(archive.tensors, options);
    } catch (const weights::ArchiveError& error) {
      throw weights::ArchiveError("weights archive '" + path + "': " + error.what());
    } catch (const ConfigError& error) {
      throw ConfigError("weights archive '" + path + "': " + error.what());
    }
  } else {
    options = infer_options(archive.tensors, prefix);
  }
  // The native generator is loaded (strictly) for both engines: it also checks the archive.
  ResNetGenerator generator(options);
  try {
    weights::load_state_dict(*generator, archive.tensors, weights::LoadOptions().prefix(prefix));
  } catch (const weights::ArchiveError& error) {
    throw weights::ArchiveError("weights archive '" + path + "': " + error.what());
  }
  generator->eval();

  Zebraifier zebraifier;
  zebraifier.trained_ = true;
  if (engine == Engine::native) {
    NativeGenerator native = native_forward(generator, convention, precision);
    zebraifier.forward_ = std::move(native.forward);
    zebraifier.finish_calibration_ = std::move(native.finish_calibration);
  } else {
    zebraifier.forward_ = jit_forward(path, convention);
  }
  zebraifier.description_ = std::string(engine == Engine::native ? "native" : "jit") +
                            " engine" + precision_note(precision) + ", weights " + path +
                            (convention == Convention::book_wrapper ? " (book's traced wrapper)" : "");
  return zebraifier;
}

Zebraifier Zebraifier::untrained(uint64_t seed, Precision precision) {
  torch::manual_seed(seed);
  ResNetGenerator generator;
  Zebraifier zebraifier;
  NativeGenerator native = native_forward(generator, Convention::plain, precision);
  zebraifier.forward_ = std::move(native.forward);
  zebraifier.finish_calibration_ = std::move(native.finish_calibration);
  zebraifier.description_ = "native engine" + precision_note(precision) + ", UNTRAINED weights (seed " +
                            std::to_string(seed) + "): not a zebra";
  return zebraifier;
}

torch::Tensor Zebraifier::forward(const torch::Tensor& image01) const {
  forward_ready();
  return run(image01);
}

void Zebraifier::forward_ready() const {
  if (finish_calibration_) {
    throw ConfigError("the int8 generator is not calibrated yet: calibrate() it on representative pictures");
  }
}

PreparedImage prepare_image(const RgbImage& image, int64_t max_side) {
  torch::InferenceMode inference;
  const auto resized = resize_to_fit(to_tensor(image), max_side);
  const int64_t height = resized.size(2);
  const int64_t width = resized.size(3);
  if (std::min(height, width) < kMinSide) {
    throw ImageError("image too small: " + std::to_string(width) + "x" + std::to_string(height) +
                     " pixels" + (max_side ? " after resizing" : "") +
                     ", the generator needs at least " + std::to_string(kMinSide) + " per side");
  }
  return {pad_to_multiple(resized, kSideMultiple), height, width};
}

RgbImage finish_image(const torch::Tensor& output01, const PreparedImage& prepared) {
  torch::InferenceMode inference;
  return to_image(output01.narrow(2, 0, prepared.height).narrow(3, 0, prepared.width));
}

void Zebraifier::calibrate(const std::vector<RgbImage>& pictures, int64_t max_side) {
  if (!finish_calibration_) throw ConfigError("only an int8 generator is calibrated, and only once");
  if (pictures.empty()) throw ConfigError("int8 calibration needs at least one picture");
  for (const auto& picture : pictures) run_pipeline(picture, max_side);
  finish_calibration_();
  finish_calibration_ = nullptr;
}

torch::Tensor Zebraifier::run(const torch::Tensor& image01) const {
  torch::InferenceMode inference;
  return forward_(image01);
}

RgbImage Zebraifier::run_pipeline(const RgbImage& image, int64_t max_side) const {
  const PreparedImage prepared = prepare_image(image, max_side);
  return finish_image(run(prepared.padded), prepared);
}

RgbImage Zebraifier::convert(const RgbImage& image, int64_t max_side) const {
  forward_ready();
  return run_pipeline(image, max_side);
}

}  // namespace dlwpt::zebraify
