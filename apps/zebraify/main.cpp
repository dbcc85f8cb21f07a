// zebraify: turns horses into zebras with the CycleGAN generator of the book's chapter 2, in
// files or folders of images, or in a desktop viewer.

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "apps/common/files.h"
#include "apps/common/progress.h"
#include "apps/paths.h"
#include "apps/zebraify/viewer.h"
#include "apps/zebraify/zebra.h"
#include "dlwpt/weights/archive.h"

namespace fs = std::filesystem;
using namespace dlwpt::zebraify;
using dlwpt::apps::has_image_extension;
using dlwpt::apps::image_files;
using dlwpt::apps::ImageReadOptions;
using dlwpt::apps::load_image;
using dlwpt::apps::RgbImage;
using dlwpt::apps::save_image;
using dlwpt::apps::UsageError;
using dlwpt::parse_precision;
using dlwpt::Precision;

namespace {

constexpr const char* kProgram = "zebraify";
// Pictures an int8 generator is calibrated on when --calibrate-on is not given.
constexpr size_t kDefaultCalibrationPictures = 8;

std::string default_weights() {
  return (fs::path(DLWPT_WEIGHTS_DIR) / "horse2zebra.pt").string();
}

Zebraifier make_zebraifier(const cxxopts::ParseResult& args) {
  const Engine engine = engine_from_string(args["engine"].as<std::string>());
  std::string path = args.count("weights") ? args["weights"].as<std::string>() : "";
  if (path.empty() && fs::exists(default_weights())) path = default_weights();
  const Precision precision = parse_precision(args["precision"].as<std::string>());
  if (!path.empty()) return Zebraifier::from_archive(path, engine, precision);
  if (engine == Engine::jit) {
    throw UsageError("the jit engine runs a TorchScript archive: give --weights (no trained "
                     "weights at " + default_weights() + ")");
  }
  return Zebraifier::untrained(args["seed"].as<uint64_t>(), precision);
}

// Where the zebra of `input` goes: `output` itself for one input and a file name, otherwise
// `output`/<input's name>.
std::string output_path(const std::string& input, const std::string& output, bool single_file) {
  if (single_file) return output;
  return (fs::path(output) / fs::path(input).filename()).string();
}

// The outputs given out so far, so that two inputs of one name from different folders
// (a/horse.jpg, b/horse.jpg) cannot overwrite each other's zebra in the output folder.
class OutputNames {
 public:
  // Reserves `target` for `input`; throws naming both inputs when another one has it. The
  // first input keeps the name even when its conversion fails, so that which file gets it
  // never depends on what else went wrong.
  void claim(const std::string& target, const std::string& input) {
    const auto [found, inserted] = owners_.try_emplace(key(target), input);
    if (!inserted) {
      throw ImageError("its zebra would overwrite '" + target + "', the zebra of '" + found->second +
                       "' (rename one of the inputs)");
    }
  }

 private:
  static std::string key(const std::string& path) {
    return fs::absolute(path).lexically_normal().string();
  }

  std::map<std::string, std::string> owners_;
};

// --output is an image name (.png, .jpg, .jpeg) or a folder; a name with another extension is
// more likely a wish for another format than a folder to create.
void check_output_name(const std::string& output) {
  if (output.empty()) throw UsageError("--output is empty; give an image name or a folder");
  std::error_code error;
  if (fs::is_directory(output, error) || has_image_extension(output)) return;
  if (!fs::path(output).extension().empty()) {
    throw UsageError("--output '" + output + "': zebras are written as .png, .jpg or .jpeg; give "
                     "such a name, or a folder (an existing one, or a name without an extension)");
  }
}

// Converts every input, reporting and skipping the ones that fail; returns the failures.
int convert_files(const Zebraifier& zebraifier, const std::vector<std::string>& inputs,
                  const std::string& output, int64_t size, const ImageReadOptions& read_options) {
  const bool single_file = inputs.size() == 1 && !fs::is_directory(output) &&
                           has_image_extension(output);
  const fs::path folder = single_file ? fs::path(output).parent_path() : fs::path(output);
  if (!folder.empty()) fs::create_directories(folder);
  dlwpt::apps::ProgressBar progress("zebraify", static_cast<int64_t>(inputs.size()));
  OutputNames outputs;
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& input = inputs[i];
    const std::string target = output_path(input, output, single_file);
    try {
      if (dlwpt::apps::same_file(input, target)) {
        throw ImageError("refusing to overwrite the input '" + input + "' with its zebra");
      }
      outputs.claim(target, input);
      save_image(zebraifier.convert(load_image(input, read_options), size), target);
    } catch (const std::exception& error) {
      ++failures;
      progress.message(std::string(kProgram) + ": skipped " + input + ": " +
                       dlwpt::first_line(dlwpt::message_of(error)));
    }
    progress.update(static_cast<int64_t>(i + 1), fs::path(input).filename().string());
  }
  progress.finish();
  std::cerr << kProgram << ": " << inputs.size() - failures << " of " << inputs.size()
            << " images converted into " << output << "\n";
  return failures;
}

cxxopts::Options make_options() {
  cxxopts::Options options(kProgram,
                           "Turns horses into zebras with the CycleGAN generator of Deep Learning "
                           "with PyTorch (chapter 2).\n\n"
                           "  zebraify horse.jpg -o zebra.png        one image\n"
                           "  zebraify photos/ more.png -o zebras/   many, into a folder\n"
                           "  zebraify --view photos/                side by side in a window\n");
  options.add_options()
      ("o,output", "output image (one input) or folder", cxxopts::value<std::string>())
      ("view", "show input and zebra side by side in a window (keys: Left/Right or P/N, Space, "
               "S to save, Q or Esc to quit)")
      ("weights", "TorchScript archive of the generator (default " + default_weights() +
                  " when present, else untrained weights)", cxxopts::value<std::string>())
      ("engine", "native (torch::nn model) or jit (the archive through torch::jit)",
       cxxopts::value<std::string>()->default_value("native"))
      ("size", "bound of the longer side, keeping the aspect ratio (0: original size)",
       cxxopts::value<int64_t>()->default_value(std::to_string(kDefaultSize)))
      ("max-pixels", "refuse images of more pixels (width x height), read from their header before "
                     "decoding", cxxopts::value<int64_t>()->default_value(
                         std::to_string(dlwpt::apps::kDefaultMaxImagePixels)))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("precision", "native engine: float32, bfloat16 (faster where the CPU has AMX or AVX512_BF16) or "
       "int8 (oneDNN, calibrated on --calibrate-on); see README for their accuracy",
       cxxopts::value<std::string>()->default_value("float32"))
      ("calibrate-on", "int8: images or folders whose conversion sets the int8 scales (default: the "
       "first " + std::to_string(kDefaultCalibrationPictures) + " inputs)",
       cxxopts::value<std::vector<std::string>>())
      ("seed", "seed of the untrained weights", cxxopts::value<uint64_t>()->default_value("0"))
      ("inputs", "images or folders", cxxopts::value<std::vector<std::string>>())
      ("h,help", "print this help");
  options.parse_positional({"inputs"});
  options.positional_help("IMAGE_OR_FOLDER...");
  return options;
}

// An int8 generator's scales, from --calibrate-on or the first inputs.
void calibrate(Zebraifier& zebraifier, const cxxopts::ParseResult& args, const std::vector<std::string>& inputs,
               int64_t size, const ImageReadOptions& read_options) {
  std::vector<std::string> paths =
      args.count("calibrate-on") ? image_files(kProgram, args["calibrate-on"].as<std::vector<std::string>>()) : inputs;
  if (!args.count("calibrate-on") && paths.size() > kDefaultCalibrationPictures) paths.resize(kDefaultCalibrationPictures);
  if (paths.empty()) throw UsageError("--calibrate-on names no JPEG or PNG images");
  std::vector<RgbImage> pictures;
  for (const auto& path : paths) pictures.push_back(load_image(path, read_options));
  zebraifier.calibrate(pictures, size);
  std::cerr << kProgram << ": int8 scales calibrated on " << pictures.size() << " picture"
            << (pictures.size() == 1 ? "" : "s") << "\n";
}

int run(const cxxopts::ParseResult& args) {
  if (!args.count("inputs")) throw UsageError("no input images (see --help)");
  const int64_t size = args["size"].as<int64_t>();
  if (size < 0 || size > 16384) throw UsageError("--size must be between 0 and 16384");
  ImageReadOptions read_options;
  read_options.max_pixels = args["max-pixels"].as<int64_t>();
  if (read_options.max_pixels < 1) throw UsageError("--max-pixels must be at least 1");
  dlwpt::apps::set_threads(args["threads"].as<int>());

  const auto inputs = image_files(kProgram, args["inputs"].as<std::vector<std::string>>());
  if (inputs.empty()) throw UsageError("no JPEG or PNG images to convert");
  Zebraifier zebraifier = make_zebraifier(args);
  if (zebraifier.needs_calibration()) calibrate(zebraifier, args, inputs, size, read_options);
  std::cerr << kProgram << ": " << zebraifier.description() << "\n";
  if (!zebraifier.trained()) {
    std::cerr << kProgram << ": WARNING: no trained weights; the output shows the pipeline "
                             "working, not a zebra. Get the book's weights with tools/fetch.py\n";
  }

  if (args.count("view")) {
    const std::string save_folder = args.count("output") ? args["output"].as<std::string>() : ".";
    return run_viewer(zebraifier, inputs, size, save_folder, read_options);
  }
  if (!args.count("output")) throw UsageError("no --output given (see --help)");
  check_output_name(args["output"].as<std::string>());
  return convert_files(zebraifier, inputs, args["output"].as<std::string>(), size, read_options) == 0
             ? 0
             : 1;
}

}  // namespace

int main(int argc, char** argv) { return dlwpt::apps::run_app(kProgram, argc, argv, make_options(), run); }
