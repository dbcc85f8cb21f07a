// dlwpt-accuracy: what bfloat16 and int8 inference change against float32, on real inputs.
// The CycleGAN generator on pictures (grey levels and PSNR of the 8-bit zebras) and the book's
// nodule pipeline on a CT scan (U-Net probabilities, mask, Dice, the candidates and their
// probabilities), each precision timed beside float32. Prints Markdown tables.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "apps/common/image_io.h"
#include "apps/paths.h"
#include "apps/zebraify/zebra.h"
#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/model_archive.h"

namespace fs = std::filesystem;
using namespace dlwpt;
using apps::RgbImage;
using apps::UsageError;
using zebraify::Zebraifier;

namespace {

constexpr const char* kProgram = "dlwpt-accuracy";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fixed(double value, int digits) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(digits) << value;
  return text.str();
}

// Why `precision` cannot run here, or "".
std::string unavailable(Precision precision) { return unsupported_reason(precision).value_or(""); }

// ------------------------------------------------------------------ CycleGAN

struct PictureDifference {
  double mean_grey_levels = 0;
  double max_grey_levels = 0;
  double psnr_db = 0;
};

torch::Tensor pixels(const RgbImage& image) {
  return torch::tensor(c10::ArrayRef<uint8_t>(image.planes), torch::kByte).to(torch::kDouble);
}

PictureDifference compare_pictures(const RgbImage& actual, const RgbImage& expected) {
  if (actual.width != expected.width || actual.height != expected.height) {
    throw std::logic_error("the zebras of one picture differ in size");
  }
  const auto a = pixels(actual);
  const auto e = pixels(expected);
  const auto difference = (a - e).abs();
  const double mse = difference.pow(2).mean().item<double>();
  return {difference.mean().item<double>(), difference.max().item<double>(),
          mse == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(255.0 * 255.0 / mse)};
}

Zebraifier make_generator(const std::string& weights, uint64_t seed, Precision precision) {
  return weights == "untrained" ? Zebraifier::untrained(seed, precision)
                                : Zebraifier::from_archive(weights, zebraify::Engine::native, precision);
}

std::vector<RgbImage> load_pictures(const std::vector<std::string>& paths) {
  std::vector<RgbImage> pictures;
  for (const auto& path : paths) pictures.push_back(apps::load_image(path));
  return pictures;
}

// Converts every picture; returns the zebras and the median seconds per picture, each timed
// on its second conversion (the first prepares the kernels of its size).
std::pair<std::vector<RgbImage>, double> convert_all(const Zebraifier& generator, const std::vector<RgbImage>& pictures,
                                                     int64_t size) {
  std::vector<RgbImage> zebras;
  std::vector<double> times;
  for (const auto& picture : pictures) {
    generator.convert(picture, size);
    const auto start = std::chrono::steady_clock::now();
    zebras.push_back(generator.convert(picture, size));
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return {zebras, times[times.size() / 2]};
}

void report_generator(const cxxopts::ParseResult& args, const std::vector<Precision>& precisions) {
  const auto names = apps::image_files(kProgram, args["pictures"].as<std::vector<std::string>>());
  if (names.empty()) throw UsageError("--pictures names no JPEG or PNG images");
  const auto pictures = load_pictures(names);
  const auto calibration = load_pictures(
      args.count("calibration-pictures")
          ? apps::image_files(kProgram, args["calibration-pictures"].as<std::vector<std::string>>())
          : names);
  if (calibration.empty()) throw UsageError("--calibration-pictures names no JPEG or PNG images");
  const int64_t size = args["size"].as<int64_t>();
  const std::string weights = args["generator"].as<std::string>();
  const uint64_t seed = args["seed"].as<uint64_t>();
  std::cerr << kProgram << ": CycleGAN on " << pictures.size() << " pictures, longer side " << size << "\n";
  const Zebraifier reference = make_generator(weights, seed, Precision::float32);
  const auto [expected, reference_seconds] = convert_all(reference, pictures, size);

  std::cout << "\n### CycleGAN generator (" << (weights == "untrained" ? "untrained, seed " + std::to_string(seed) : weights)
            << "), longer side " << size << ", against float32\n\n"
            << "| precision | picture | mean grey levels | largest | PSNR dB | s per picture | speed-up |\n"
            << "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const Precision precision : precisions) {
    if (const auto reason = unavailable(precision); !reason.empty()) {
      std::cout << "| " << to_string(precision) << " | unavailable: " << reason << " | | | | | |\n";
      continue;
    }
    Zebraifier reduced = make_generator(weights, seed, precision);
    if (reduced.needs_calibration()) reduced.calibrate(calibration, size);
    const auto [actual, seconds] = convert_all(reduced, pictures, size);
    for (size_t i = 0; i < pictures.size(); ++i) {
      const auto difference = compare_pictures(actual[i], expected[i]);
      std::cout << "| " << to_string(precision) << " | " << fs::path(names[i]).filename().string() << " | "
                << fixed(difference.mean_grey_levels, 2) << " | " << fixed(difference.max_grey_levels, 0) << " | "
                << fixed(difference.psnr_db, 1) << " | " << (i == 0 ? fixed(seconds, 3) : "") << " | "
                << (i == 0 ? fixed(reference_seconds / seconds, 2) + "x" : "") << " |\n";
    }
  }
  std::cout << "\nfloat32: " << fixed(reference_seconds, 3) << " s per picture (median). int8 calibrated on "
            << calibration.size() << " picture" << (calibration.size() == 1 ? "" : "s")
            << (args.count("calibration-pictures") ? " given apart from the measured ones" : ": the measured ones")
            << ".\n";
}

// ------------------------------------------------------------------ CT pipeline

struct PipelineRun {
  ct::ScanAnalysis analysis;
  double seconds = 0;
};

PipelineRun run_pipeline(ct::AnalysisModels& models, const ct::CtVolume& volume) {
  const auto start = std::chrono::steady_clock::now();
  torch::InferenceMode inference;
  PipelineRun run{ct::analyse_scan(models, volume), 0};
  run.seconds = seconds_since(start);
  return run;
}

// The candidates of `actual` matched to those of `expected` by their centre (within 2
// voxels): the largest nodule-probability change, and whether the sets above 0.5 agree.
struct CandidateComparison {
  int64_t matched = 0;
  double largest_change = 0;
  int64_t above_expected = 0;
  int64_t above_actual = 0;
  bool same_above = true;
};

CandidateComparison compare_candidates(const std::vector<ct::Candidate>& actual,
                                       const std::vector<ct::Candidate>& expected, double threshold) {
  CandidateComparison result;
  const auto distance = [](const ct::Candidate& a, const ct::Candidate& b) {
    double sum = 0;
    for (size_t axis = 0; axis < 3; ++axis) sum += std::pow(a.center_irc[axis] - b.center_irc[axis], 2);
    return std::sqrt(sum);
  };
  for (const auto& candidate : expected) result.above_expected += candidate.nodule_probability > threshold;
  for (const auto& candidate : actual) {
    const bool above = candidate.nodule_probability > threshold;
    result.above_actual += above;
    const ct::Candidate* twin = nullptr;
    for (const auto& other : expected) {
      if (distance(candidate, other) <= 2.0 && (!twin || distance(candidate, other) < distance(candidate, *twin))) {
        twin = &other;
      }
    }
    if (!twin) {
      result.same_above = result.same_above && !above;
      continue;
    }
    ++result.matched;
    result.largest_change =
        std::max(result.largest_change, std::abs(candidate.nodule_probability - twin->nodule_probability));
    result.same_above = result.same_above && above == (twin->nodule_probability > threshold);
  }
  result.same_above = result.same_above && result.above_actual == result.above_expected;
  return result;
}

double dice(const torch::Tensor& a, const torch::Tensor& b) {
  const double both = (a & b).sum().item<double>();
  const double total = a.sum().item<double>() + b.sum().item<double>();
  return total == 0 ? 1.0 : 2 * both / total;
}

// Models in `segmentation` and `classifier` precision. int8 models are calibrated by a
// float32 run of the pipeline on `volume` itself (the only real scan here).
ct::AnalysisModels precision_models(const std::string& segmentation_path, const std::string& classifier_path,
                                    Precision segmentation, Precision classifier, const ct::CtVolume& volume) {
  ct::AnalysisModels models;
  models.segmentation = weights::load_model<UNetWrapper>(segmentation_path);
  models.nodule = weights::load_model<LunaModel>(classifier_path);
  const bool calibrate = segmentation == Precision::int8 || classifier == Precision::int8;
  models.segmentation = segmentation == Precision::int8
                            ? begin_int8_calibration(models.segmentation)
                            : optimize_for_inference(models.segmentation, InferenceOptions().precision(segmentation));
  models.nodule = classifier == Precision::int8
                      ? begin_int8_calibration(models.nodule)
                      : optimize_for_inference(models.nodule, InferenceOptions().precision(classifier));
  if (calibrate) {
    run_pipeline(models, volume);
    if (segmentation == Precision::int8) finish_int8_calibration(*models.segmentation);
    if (classifier == Precision::int8) finish_int8_calibration(*models.nodule);
  }
  return models;
}

void report_pipeline(const cxxopts::ParseResult& args, const std::vector<Precision>& precisions) {
  const std::string scan = args["scan"].as<std::string>();
  const std::string segmentation = args["segmentation"].as<std::string>();
  const std::string classifier = args["classifier"].as<std::string>();
  std::cerr << kProgram << ": reading " << scan << "\n";
  const ct::CtVolume volume = ct::read_scan(scan);
  auto reference_models =
      precision_models(segmentation, classifier, Precision::float32, Precision::float32, volume);
  std::cerr << kProgram << ": float32 pipeline\n";
  const PipelineRun reference = run_pipeline(reference_models, volume);
  const auto voxels = static_cast<double>(reference.analysis.mask.numel());

  fs::path name(scan);
  if (!name.has_filename()) name = name.parent_path();  // a folder given with its trailing slash
  std::cout << "\n### Nodule pipeline on " << name.filename().string() << " ("
            << reference.analysis.probability.size(0) << " slices), against float32\n\n"
            << "| U-Net | classifier | largest probability change | mask voxels changed | Dice | candidates "
               "| above 0.5 | same above 0.5 | largest nodule probability change | s | speed-up |\n"
            << "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n"
            << "| float32 | float32 | 0 | 0 | 1 | " << reference.analysis.candidates.size() << " | "
            << compare_candidates(reference.analysis.candidates, reference.analysis.candidates, 0.5).above_actual
            << " | yes | 0 | " << fixed(reference.seconds, 1) << " | 1.00x |\n";
  for (const Precision precision : precisions) {
    if (const auto reason = unavailable(precision); !reason.empty()) {
      std::cout << "| " << to_string(precision) << " | unavailable: " << reason << " | | | | | | | | | |\n";
      continue;
    }
    for (const Precision segmentation_precision : {precision, Precision::float32}) {
      std::cerr << kProgram << ": U-Net in " << to_string(segmentation_precision) << ", classifier in "
                << to_string(precision) << "\n";
      auto models = precision_models(segmentation, classifier, segmentation_precision, precision, volume);
      const PipelineRun run = run_pipeline(models, volume);
      const auto& a = run.analysis;
      const auto& e = reference.analysis;
      const auto candidates = compare_candidates(a.candidates, e.candidates, 0.5);
      const double changed = (a.mask != e.mask).sum().item<double>();
      std::cout << "| " << to_string(segmentation_precision) << " | " << to_string(precision) << " | "
                << fixed((a.probability - e.probability).abs().max().item<double>(), 4) << " | "
                << static_cast<int64_t>(changed) << " (" << fixed(100 * changed / voxels, 4) << "%) | "
                << fixed(dice(a.mask, e.mask), 4) << " | " << a.candidates.size() << " | " << candidates.above_actual
                << " | " << (candidates.same_above ? "yes" : "no") << " | " << fixed(candidates.largest_change, 4)
                << " | " << fixed(run.seconds, 1) << " | " << fixed(reference.seconds / run.seconds, 2) << "x |\n";
    }
  }
  std::cout << "\nint8 scales calibrated by a float32 run on this scan, the only real one here; candidates "
               "matched by centre within 2 voxels.\n";
}

std::vector<Precision> precisions_from(const std::string& list) {
  std::vector<Precision> precisions;
  std::stringstream names(list);
  for (std::string name; std::getline(names, name, ',');) {
    const Precision precision = parse_precision(name);
    if (precision == Precision::float32) throw UsageError("--precisions lists the reduced ones; float32 is the reference");
    precisions.push_back(precision);
  }
  if (precisions.empty()) throw UsageError("--precisions is empty");
  return precisions;
}

cxxopts::Options make_options() {
  cxxopts::Options options(kProgram,
                           "Measures bfloat16 and int8 inference against float32 on real inputs; prints "
                           "Markdown tables.\n\n"
                           "  dlwpt-accuracy --pictures horse.jpg more/ --calibration-pictures samples/\n"
                           "  dlwpt-accuracy --scan ct-folder/\n");
  options.add_options()
      ("precisions", "reduced precisions to measure", cxxopts::value<std::string>()->default_value("bfloat16,int8"))
      ("pictures", "CycleGAN: pictures to compare on", cxxopts::value<std::vector<std::string>>())
      ("calibration-pictures", "CycleGAN int8: pictures that set the scales (default: --pictures)",
       cxxopts::value<std::vector<std::string>>())
      ("generator", "CycleGAN weights archive, or 'untrained' (seeded random weights)",
       cxxopts::value<std::string>()->default_value("untrained"))
      ("seed", "seed of the untrained generator", cxxopts::value<uint64_t>()->default_value("0"))
      ("size", "CycleGAN: bound of the pictures' longer side", cxxopts::value<int64_t>()->default_value("256"))
      ("scan", "CT: a DICOM series folder or a MetaImage file", cxxopts::value<std::string>())
      ("segmentation", "CT: U-Net weights archive",
       cxxopts::value<std::string>()->default_value((fs::path(DLWPT_WEIGHTS_DIR) / "segmentation.pt").string()))
      ("classifier", "CT: LunaModel weights archive",
       cxxopts::value<std::string>()->default_value((fs::path(DLWPT_WEIGHTS_DIR) / "classifier.pt").string()))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "print this help");
  return options;
}

int run(const cxxopts::ParseResult& args) {
  if (!args.count("pictures") && !args.count("scan")) throw UsageError("give --pictures, --scan or both (see --help)");
  const auto precisions = precisions_from(args["precisions"].as<std::string>());
  apps::set_threads(args["threads"].as<int>());
  if (args.count("pictures")) report_generator(args, precisions);
  if (args.count("scan")) report_pipeline(args, precisions);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return apps::run_app(kProgram, argc, argv, make_options(), run); }
