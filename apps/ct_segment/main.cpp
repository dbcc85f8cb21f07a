// ct-segment: the book's part-2 nodule analysis over a batch of CT scans: U-Net segmentation,
// candidate grouping, LunaModel classification, with masks and candidate reports per scan.

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "apps/common/progress.h"
#include "apps/common/files.h"
#include "apps/ct_segment/merge.h"
#include "apps/ct_segment/report.h"
#include "apps/ct_segment/run_records.h"
#include "apps/ct_segment/scan_output.h"
#include "apps/ct_segment/scan_sources.h"
#include "apps/ct_segment/sharding.h"
#include "dlwpt/ct/scoring.h"
#include "apps/paths.h"
#include "dlwpt/ct/pipeline.h"
#include "dlwpt/ct/scan_io.h"
#include "dlwpt/models/inference.h"
#include "dlwpt/weights/model_archive.h"

namespace fs = std::filesystem;
using namespace dlwpt;
using namespace dlwpt::ct_segment;
using dlwpt::ct::Confusion;
using dlwpt::ct::format_confusion;
using dlwpt::ct::operator+=;
using apps::UsageError;

namespace {

constexpr const char* kProgram = "ct-segment";

// One line of the final table.
struct ScanRow {
  std::string label;
  std::string series_uid;
  std::string status = "";  // "done", "skipped (...)", or the error
  int64_t candidates = 0;
  int64_t nodules = 0;
  double seconds = 0;
};

std::string weights_path(const cxxopts::ParseResult& args, const char* option, const char* file) {
  if (args.count(option)) return args[option].as<std::string>();
  return (fs::path(DLWPT_WEIGHTS_DIR) / file).string();
}

// Loads an archive, checks that its model fits the pipeline before any scan is read (the
// pipeline's ConfigError gains the archive's path), and prepares it for fast inference.
template <typename Model, typename Check>
Model load_for_pipeline(const std::string& path, const Check& check, const InferenceOptions& inference) {
  auto model = weights::load_model<Model>(path);
  try {
    check(model);
  } catch (const ConfigError& error) {
    throw ConfigError("weights archive '" + path + "': " + error.what());
  }
  return optimize_for_inference(model, inference);
}

ct::AnalysisModels load_models(const cxxopts::ParseResult& args) {
  const auto classifier = [](const std::string& role) {
    return [role](const LunaModel& model) { ct::check_classification_model(model, role); };
  };
  // --precision sets both; --segmentation-precision and --classifier-precision one each.
  const auto precision_of_option = [&](const char* option) {
    const std::string given = args.count(option) ? option : "precision";
    return InferenceOptions().precision(apps::float_precision(
        "--" + given, args[given].as<std::string>(),
        "on the book's real CT, int8 changed the mask (Dice 0.83) and the candidates above 0.5 (README, "
        "\"Reduced precision\"); ct-segment runs float32 or bfloat16"));
  };
  const auto segmentation = precision_of_option("segmentation-precision");
  const auto classification = precision_of_option("classifier-precision");
  std::cerr << kProgram << ": U-Net in " << to_string(segmentation.precision()) << ", classifier in "
            << to_string(classification.precision()) << "\n";
  ct::AnalysisModels models;
  models.segmentation = load_for_pipeline<UNetWrapper>(
      weights_path(args, "segmentation", "segmentation.pt"), ct::check_segmentation_model, segmentation);
  models.nodule = load_for_pipeline<LunaModel>(weights_path(args, "classifier", "classifier.pt"),
                                               classifier("nodule"), classification);
  if (args.count("malignancy-weights")) {
    models.malignancy = load_for_pipeline<LunaModel>(
        args["malignancy-weights"].as<std::string>(), classifier("malignancy"), classification);
  }
  return models;
}

struct BatchOptions {
  std::string output;
  ct::AnalysisOptions analysis;
  OutputOptions outputs;
  bool force = false;
  int64_t max_voxels = ct::kDefaultMaxVoxels;
  std::map<std::string, std::vector<ct::Annotation>> annotations;
};

// Why a complete folder cannot be taken for this source's results, or "" when it can.
std::string foreign_results(const ScanOutput& output, const ScanSource& source) {
  const auto recorded = output.recorded_source();
  if (!recorded || *recorded == source.identity) return "";
  return "'" + output.final_folder() + "' holds the results of " + *recorded + ", not of " +
         source.identity + " (use another output folder, or --force to replace them)";
}

// The row of a scan this process leaves alone: complete, or claimed by another process.
std::optional<ScanRow> row_if_not_ours(const ScanSource& source, ScanOutput& output, bool force) {
  ScanRow row{source.label, source.series_uid};
  if (!force && output.complete()) {
    const std::string foreign = foreign_results(output, source);
    if (!foreign.empty()) throw FileError(foreign);
    row.status = "skipped (complete)";
    return row;
  }
  if (const auto holder = output.try_claim(source.identity)) {
    if (!holder->note.empty() && holder->note != source.identity) {
      throw FileError("'" + output.final_folder() + "' is being written by " + holder->who + " for " +
                      holder->note + ", not for " + source.identity +
                      " (scans of one output folder need distinct names)");
    }
    row.status = "skipped (in progress: " + holder->who + ")";
    return row;
  }
  // Finished by another process between the two checks above.
  if (!force && output.complete()) return row_if_not_ours(source, output, force);
  return std::nullopt;
}

// Reads, analyses and writes one scan, claimed for this process while it does (scan_output.h:
// concurrent and repeated runs into one folder each do a scan once, and a folder under its
// final name is always complete).
ScanRow process_scan(const ScanSource& source, ct::AnalysisModels& models, const BatchOptions& options,
                     Confusion& confusion) {
  const auto start = std::chrono::steady_clock::now();
  // A scan's folder name is known before it is read, so complete scans cost no reading.
  std::optional<ScanOutput> output;
  if (!source.series_uid.empty()) {
    output.emplace(options.output, source.series_uid);
    if (auto row = row_if_not_ours(source, *output, options.force)) return *row;
  }
  const ct::CtVolume volume = source.read();
  if (!output) {
    output.emplace(options.output, volume.series_uid);
    if (auto row = row_if_not_ours(source, *output, options.force)) return *row;
  }
  ScanRow row{source.label, volume.series_uid};
  apps::ProgressBar progress(output->name().substr(0, 24), 2 * volume.slices());
  const auto analysis = ct::analyse_scan(models, volume, options.analysis,
                                         [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  for (const auto& note : analysis.notes) {
    std::cerr << kProgram << ": " << volume.series_uid << ": " << note << "\n";
  }

  write_scan_outputs(output->start_partial(), volume, analysis, options.outputs);
  output->publish(source.identity, options.force);
  const std::string final_folder = output->final_folder();

  row.candidates = static_cast<int64_t>(analysis.candidates.size());
  for (const auto& candidate : analysis.candidates) row.nodules += candidate.nodule_probability > 0.5;
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  row.status = "done";
  const auto truth = options.annotations.find(volume.series_uid);
  if (truth != options.annotations.end()) confusion += match_and_score(analysis.candidates, truth->second);
  std::cerr << kProgram << ": " << volume.series_uid << ": " << volume.slices() << " slices, "
            << row.candidates << " candidates, " << row.nodules << " with nodule probability > 0.5, "
            << apps::format_duration(row.seconds) << " -> " << final_folder << "\n";
  return row;
}

void print_table(const std::vector<ScanRow>& rows) {
  std::printf("\n%-64s %10s %8s %8s  %s\n", "scan", "candidates", "nodules", "time", "status");
  for (const auto& row : rows) {
    const std::string name = row.series_uid.empty() ? row.label : row.series_uid;
    std::printf("%-64s %10lld %8lld %8s  %s\n", name.substr(0, 64).c_str(),
                static_cast<long long>(row.candidates), static_cast<long long>(row.nodules),
                apps::format_duration(row.seconds).c_str(), row.status.c_str());
  }
}

cxxopts::Options make_options() {
  cxxopts::Options options(
      kProgram,
      "Finds lung nodule candidates in CT scans with the book's U-Net and LunaModel (Deep "
      "Learning with PyTorch, part 2): per scan a mask, candidates.csv/.json and previews.\n\n"
      "  ct-segment scan.mhd -o results/              one LUNA16 MetaImage scan\n"
      "  ct-segment subset0/ dicom-folder/ -o results/  every scan in these folders\n"
      "  ct-segment @scans.txt -o results/            the scans listed in a file\n"
      "  ct-segment @scans.txt -o results/ --shard 2/8  the third of 8 shards of them (K from 0)\n"
      "  ct-segment --merge results/                   one table of every shard's results\n\n"
      "In a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,\n"
      "with --shard-count or DLWPT_SHARD_COUNT) each task does its shard of the scans without\n"
      "--shard (--shard all does them all). Any number of runs may share an output folder: each\n"
      "scan is done once, and --merge reports the scans done, failed and missing.\n");
  options.add_options()
      ("o,output", "output folder, one subfolder per scan", cxxopts::value<std::string>())
      ("segmentation", "U-Net archive (default pretrained/segmentation.pt)", cxxopts::value<std::string>())
      ("classifier", "nodule LunaModel archive (default pretrained/classifier.pt)", cxxopts::value<std::string>())
      ("malignancy-weights", "malignancy LunaModel archive (adds a malignancy probability)",
       cxxopts::value<std::string>())
      ("series", "only this DICOM series UID in DICOM folders", cxxopts::value<std::string>())
      ("batch-size", "slices per U-Net batch (1 is fastest on CPU)", cxxopts::value<int64_t>()->default_value("1"))
      ("chunk-batch-size", "candidates per LunaModel batch (1 is fastest on CPU)", cxxopts::value<int64_t>()->default_value("1"))
      ("format", "mask, probability map and volume as mhd (MetaImage .mhd + .raw) or nifti (.nii.gz)",
       cxxopts::value<std::string>()->default_value("mhd"))
      ("probability", "also write the probability map (probability.mhd)")
      ("volume", "also write the scan itself in HU (volume.mhd), e.g. to view a DICOM scan with its mask")
      ("previews", "PNG slices of the N most probable candidates", cxxopts::value<int64_t>()->default_value("0"))
      ("annotations", "LUNA annotations CSV: score the detections against it",
       cxxopts::value<std::string>())
      ("force", "redo scans whose outputs are complete")
      ("shard", "do only shard K of N of the scans (K/N, K from 0), or 'all' inside a job array",
       cxxopts::value<std::string>())
      ("shard-count", "the shard count of a job array's index (JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID)",
       cxxopts::value<int64_t>())
      ("merge", "merge the results of every run into FOLDER: candidates.csv and scans.csv; exit 1 "
       "when a scan failed or is missing", cxxopts::value<std::string>(), "FOLDER")
      ("all-scans", "with --merge, list every scan, not only those not done")
      ("max-voxels", "refuse scans of more voxels (memory: about 24 bytes each)",
       cxxopts::value<int64_t>()->default_value(std::to_string(ct::kDefaultMaxVoxels)))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("precision", "float32 (the book's results), or bfloat16 (faster where the CPU has AMX or "
       "AVX512_BF16; see README for what it changes on the book's CT)",
       cxxopts::value<std::string>()->default_value("float32"))
      ("segmentation-precision", "the U-Net's precision, if not --precision's", cxxopts::value<std::string>())
      ("classifier-precision", "the LunaModels' precision, if not --precision's", cxxopts::value<std::string>())
      ("inputs", "scans, folders or @list files", cxxopts::value<std::vector<std::string>>())
      ("h,help", "print this help");
  options.parse_positional({"inputs"});
  options.positional_help("SCAN_OR_FOLDER...");
  return options;
}

BatchOptions batch_options(const cxxopts::ParseResult& args) {
  BatchOptions options;
  if (!args.count("output")) throw UsageError("no --output folder given (see --help)");
  options.output = args["output"].as<std::string>();
  const int64_t batch = args["batch-size"].as<int64_t>();
  const int64_t chunks = args["chunk-batch-size"].as<int64_t>();
  if (batch < 1 || batch > 512 || chunks < 1 || chunks > 1024) {
    throw UsageError("--batch-size must be 1..512 and --chunk-batch-size 1..1024");
  }
  options.analysis.batch_size(batch).chunk_batch_size(chunks);
  const std::string format = args["format"].as<std::string>();
  if (format != "mhd" && format != "nifti") throw UsageError("--format must be mhd or nifti, not '" + format + "'");
  options.outputs.volume_format = format == "nifti" ? ct::VolumeFormat::nifti : ct::VolumeFormat::metaimage;
  options.outputs.probability_map = args.count("probability") > 0;
  options.outputs.volume = args.count("volume") > 0;
  options.outputs.previews = args["previews"].as<int64_t>();
  if (options.outputs.previews < 0) throw UsageError("--previews must be >= 0");
  options.outputs.malignancy = args.count("malignancy-weights") > 0;
  options.force = args.count("force") > 0;
  options.max_voxels = args["max-voxels"].as<int64_t>();
  if (options.max_voxels < 1) throw UsageError("--max-voxels must be >= 1");
  if (args.count("annotations")) options.annotations = ct::read_annotations(args["annotations"].as<std::string>());
  return options;
}

// Remembers why a scan failed, for --merge; a scan that is done forgets it.
void record_outcome(const std::string& run_folder, const ScanSource& scan, const std::string& failure) {
  try {
    if (failure.empty()) {
      clear_failure(run_folder, scan_key(scan));
    } else {
      record_failure(run_folder, scan_key(scan), {scan.label, failure.substr(0, failure.find('\n')), apps::this_process()});
    }
  } catch (const std::exception& error) {
    std::cerr << kProgram << ": warning: cannot record the outcome of " << scan.label << ": " << message_of(error) << "\n";
  }
}

// The options of an analysis, meaningless to --merge.
constexpr const char* kAnalysisOptions[] = {
    "inputs", "output", "shard", "shard-count", "segmentation", "classifier", "malignancy-weights", "series",
    "batch-size", "chunk-batch-size", "format", "probability", "volume", "previews", "force", "max-voxels", "threads",
    "precision", "segmentation-precision", "classifier-precision"};

int run_merge(const cxxopts::ParseResult& args) {
  if (args.count("merge") > 1) throw UsageError("--merge takes one folder (merge each run on its own)");
  for (const char* option : kAnalysisOptions) {
    if (!args.count(option)) continue;
    const std::string given = std::strcmp(option, "inputs") == 0 ? "scans" : "--" + std::string(option);
    throw UsageError(given + " given with --merge, which only reads what the runs wrote to its folder "
                     "(it takes --annotations and --all-scans)");
  }
  const std::string folder = args["merge"].as<std::string>();
  std::map<std::string, std::vector<ct::Annotation>> annotations;
  if (args.count("annotations")) annotations = ct::read_annotations(args["annotations"].as<std::string>());
  const auto report = merge_run(folder, args.count("annotations") ? &annotations : nullptr);
  std::printf("%s", format_merge_report(report, args.count("all-scans") > 0).c_str());
  std::printf("\nwrote %s and %s\n", (fs::path(folder) / "candidates.csv").c_str(), (fs::path(folder) / "scans.csv").c_str());
  return report.count(MergedScan::Status::done) == static_cast<int64_t>(report.scans.size()) ? 0 : 1;
}

Shard shard_of_this_process(const cxxopts::ParseResult& args) {
  const auto flag = args.count("shard") ? std::optional(args["shard"].as<std::string>()) : std::nullopt;
  const auto count = args.count("shard-count") ? std::optional(args["shard-count"].as<int64_t>()) : std::nullopt;
  return choose_shard(flag, count, process_environment());
}

// The scans of this process's shard, with its DICOM folders listed; records the run's plan
// (and the series listed) in the output folder first.
std::vector<ScanSource> scans_of_this_shard(const cxxopts::ParseResult& args, const BatchOptions& batch,
                                            const Shard& shard) {
  const auto all_scans = collect_scans(args["inputs"].as<std::vector<std::string>>(),
                                       args.count("series") ? args["series"].as<std::string>() : "",
                                       batch.max_voxels);
  if (all_scans.empty()) throw UsageError("no scans found in the inputs");
  fs::create_directories(batch.output);
  record_plan(batch.output, all_scans, shard.count);
  const auto scans = list_dicom_folders(scans_of_shard(all_scans, shard));
  if (std::any_of(scans.begin(), scans.end(), [](const auto& scan) { return !scan.listed_from.empty(); })) {
    record_plan(batch.output, scans, shard.count);
  }
  if (!shard.whole()) {
    std::cerr << kProgram << ": " << shard.describe() << ": " << scans.size() << " scans of "
              << all_scans.size() << " inputs and DICOM folders\n";
  }
  return scans;
}

// Analyses every scan, each failure its own; prints the table. Returns the failures.
int analyse_scans(const std::vector<ScanSource>& scans, ct::AnalysisModels& models, const BatchOptions& batch,
                  const std::string& annotations) {
  std::vector<ScanRow> rows;
  Confusion confusion{};
  int failures = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < scans.size(); ++i) {
    std::cerr << kProgram << ": scan " << i + 1 << "/" << scans.size() << ": " << scans[i].label << "\n";
    try {
      rows.push_back(process_scan(scans[i], models, batch, confusion));
      if (rows.back().status.rfind("skipped (in progress", 0) != 0) record_outcome(batch.output, scans[i], "");
    } catch (const std::exception& error) {
      ++failures;
      const std::string message = message_of(error);
      std::cerr << kProgram << ": FAILED " << scans[i].label << ": " << message << "\n";
      rows.push_back({scans[i].label, "", "FAILED: " + message.substr(0, message.find('\n'))});
      record_outcome(batch.output, scans[i], message);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << kProgram << ": " << i + 1 << "/" << scans.size() << " scans, "
              << apps::format_duration(elapsed) << " elapsed, ETA "
              << apps::format_duration(elapsed / (i + 1) * (scans.size() - i - 1)) << "\n";
  }
  print_table(rows);
  if (!batch.annotations.empty()) {
    std::printf("\nDetections against %s:\n%s", annotations.c_str(), format_confusion(confusion).c_str());
  }
  return failures;
}

int run(const cxxopts::ParseResult& args) {
  if (args.count("merge")) return run_merge(args);
  if (args.count("all-scans")) throw UsageError("--all-scans is an option of --merge");
  if (!args.count("inputs")) throw UsageError("no scans given (see --help)");
  const BatchOptions batch = batch_options(args);
  const Shard shard = shard_of_this_process(args);
  apps::set_threads(args["threads"].as<int>());

  const auto scans = scans_of_this_shard(args, batch, shard);
  if (scans.empty()) {
    std::printf("\n%s has no scan of these inputs\n", shard.describe().c_str());
    return 0;
  }
  auto models = load_models(args);
  const int failures = analyse_scans(scans, models, batch,
                                     args.count("annotations") ? args["annotations"].as<std::string>() : "");
  std::printf("\n%zu scans%s, %d failed\n", scans.size(),
              shard.whole() ? "" : (" of " + shard.describe()).c_str(), failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return apps::run_app(kProgram, argc, argv, make_options(), run); }
