// train: trains the book's models in C++: the nodule classifier (LunaModel) from scratch, from
// an archive, or fine-tuned into a malignancy classifier (chapter 14), on chunks cut from CT
// scans at the candidates of a LUNA-style CSV; and the U-Net segmenter (chapter 13) on slice
// stacks with masks grown from annotated nodules.

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <cxxopts.hpp>
#include <torch/torch.h>

#include "apps/common/cli.h"
#include "apps/common/files.h"
#include "apps/common/progress.h"
#include "dlwpt/training/trainer.h"
#include "dlwpt/training/surgery.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt {
namespace {

using apps::UsageError;
namespace tr = training;

constexpr const char* kProgram = "train";

cxxopts::Options make_options() {
  cxxopts::Options options(
      kProgram,
      "Trains the book's models (Deep Learning with PyTorch, part 2) on CT scans: LunaModel on "
      "32x48x48 chunks around the candidates of a CSV, or the U-Net on 7-slice stacks with masks "
      "grown from annotated nodules; writes metrics.csv, best.pt (best validation F1, or Dice) "
      "and checkpoint/ into the run folder.\n\n"
      "  train --candidates candidates.csv --scans luna/ -o runs/nodule --epochs 10 --balanced 1 --augment\n"
      "  train --task malignancy --candidates annotations_with_malignancy.csv --scans luna/ \\\n"
      "        --finetune pretrained/classifier.pt --finetune-depth 2 -o runs/malignancy\n"
      "  train --task segmentation --candidates annotations.csv --scans luna/ -o runs/seg --augment\n"
      "  train ... -o runs/nodule --epochs 20 --resume     continue a run to epoch 20\n");
  options.add_options()
      ("task", "nodule (label column 'class'), malignancy (label column 'mal_bool') or "
       "segmentation (annotations: the U-Net)",
       cxxopts::value<std::string>()->default_value("nodule"))
      ("candidates", "CSV with seriesuid, coordX, coordY, coordZ and the label column", cxxopts::value<std::string>())
      ("scans", "folder with the scans as <seriesuid>.mhd (searched recursively)", cxxopts::value<std::string>())
      ("o,output", "run folder: metrics.csv, best.pt, checkpoint/", cxxopts::value<std::string>())
      ("epochs", "train up to this epoch", cxxopts::value<int64_t>()->default_value("1"))
      ("batch-size", "samples per step (default 32 chunks; 16 slice crops)", cxxopts::value<int64_t>())
      ("epoch-size", "training samples per epoch (0: one per candidate)", cxxopts::value<int64_t>()->default_value("0"))
      ("balanced", "N > 0: one positive, then N negatives (the book's --balanced is 1)", cxxopts::value<int64_t>()->default_value("0"))
      ("augment", "the book's augmentation: flip, offset (0.1 chunks, 0.03 slices), scale 0.2, rotation, noise 25 HU")
      ("val-stride", "every N-th series (by UID) validates", cxxopts::value<int64_t>()->default_value("10"))
      ("optimizer", "sgd or adam (default sgd; adam for segmentation)", cxxopts::value<std::string>())
      ("lr", "learning rate (default 0.001; 0.003 when fine-tuning)", cxxopts::value<double>())
      ("momentum", "SGD momentum", cxxopts::value<double>()->default_value("0.99"))
      ("weight-decay", "weight decay (default 0; 1e-4 when fine-tuning)", cxxopts::value<double>())
      ("init", "start from this archive (all weights; a U-Net for segmentation)", cxxopts::value<std::string>())
      ("finetune", "fine-tune this LunaModel archive: all but head_linear loaded", cxxopts::value<std::string>())
      ("finetune-depth", "blocks trained when fine-tuning: 1 = head_linear, 2 = also block4, ...",
       cxxopts::value<int64_t>()->default_value("1"))
      ("resume", "continue the run in --output from its checkpoint")
      ("seed", "seed of the shuffling and augmentation", cxxopts::value<uint64_t>()->default_value("0"))
      ("workers", "threads preparing samples", cxxopts::value<int64_t>()->default_value("2"))
      ("threads", "intra-op threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "print this help");
  return options;
}

std::string required(const cxxopts::ParseResult& args, const std::string& name) {
  if (!args.count(name)) throw UsageError("--" + name + " is required (see --help)");
  return args[name].as<std::string>();
}

std::string label_column(const std::string& task) {
  if (task == "nodule") return "class";
  if (task == "malignancy") return "mal_bool";
  throw UsageError("--task must be nodule, malignancy or segmentation, not '" + task + "'");
}

tr::OptimizerOptions optimizer_options(const cxxopts::ParseResult& args, tr::OptimizerOptions options) {
  if (args.count("optimizer")) {
    const auto kind = tr::optimizer_kind_from_string(args["optimizer"].as<std::string>());
    if (kind != options.kind()) {
      options = kind == tr::OptimizerKind::adam ? tr::book_segmentation_optimizer()
                                                : tr::book_classification_optimizer();
    }
  }
  if (args.count("lr")) options.lr(args["lr"].as<double>());
  if (args.count("weight-decay")) options.weight_decay(args["weight-decay"].as<double>());
  options.momentum(args["momentum"].as<double>());
  if (!(options.lr() > 0 && options.lr() < 10)) throw UsageError("--lr must be in (0, 10)");
  // Momentum 1 or more makes every step larger than the last: the weights diverge.
  if (!(options.momentum() >= 0 && options.momentum() < 1)) throw UsageError("--momentum must be in [0, 1)");
  if (!(options.weight_decay() >= 0 && options.weight_decay() < 1)) {
    throw UsageError("--weight-decay must be in [0, 1)");
  }
  return options;
}

// Where the model's weights come from: --init, --finetune (with --finetune-depth) or fresh.
void check_model_source(const cxxopts::ParseResult& args) {
  if (args.count("init") && args.count("finetune")) throw UsageError("give --init or --finetune, not both");
  if (args.count("finetune-depth") && !args.count("finetune")) {
    throw UsageError("--finetune-depth needs --finetune (the archive to fine-tune)");
  }
}

// The model to train: fresh (the book's initialisation), all weights of --init, or --finetune's
// weights except the head with only the last --finetune-depth blocks trainable.
LunaModel make_model(const cxxopts::ParseResult& args) {
  if (args.count("init")) return weights::load_model<LunaModel>(args["init"].as<std::string>());
  LunaModel model;
  if (args.count("finetune")) {
    const auto source = weights::load_model<LunaModel>(args["finetune"].as<std::string>());
    tr::load_except_blocks(*model, weights::state_dict(*source), {"head_linear"});
    const auto trained = tr::freeze_all_but_last_blocks(*model, args["finetune-depth"].as<int64_t>());
    std::cerr << kProgram << ": fine-tuning";
    for (const auto& block : trained) std::cerr << " " << block;
    std::cerr << "; " << tr::trainable_parameters(*model).size() << " of "
              << model->parameters().size() << " parameter tensors train\n";
  }
  return model;
}

// Progress bars per phase, each ending with the phase's metrics.
tr::TrainingCallbacks progress_callbacks(std::unique_ptr<apps::ProgressBar>& bar) {
  tr::TrainingCallbacks callbacks;
  callbacks.batch_done = [&bar](int64_t epoch, const std::string& phase, int64_t done, int64_t total) {
    if (!bar) bar = std::make_unique<apps::ProgressBar>("epoch " + std::to_string(epoch) + " " + phase, total);
    bar->update(done);
  };
  callbacks.phase_done = [&bar](const tr::EpochMetrics& metrics) {
    if (bar) bar->finish(tr::summary(metrics));
    bar.reset();
  };
  return callbacks;
}

// --workers: 0 prepares samples in the training thread; more workers than cores only contend,
// and in the thousands exhaust the machine's threads (std::system_error, an abort).
int64_t worker_count(const cxxopts::ParseResult& args) {
  const int64_t workers = args["workers"].as<int64_t>();
  const int cores = apps::available_cores();
  if (!args.count("workers")) return std::min<int64_t>(workers, cores);  // the default: 2
  if (workers < 0 || workers > cores) {
    throw UsageError("--workers " + std::to_string(workers) + ": must be 0 (no worker threads) to " +
                     std::to_string(cores) + " (the cores of this machine)");
  }
  return workers;
}

tr::TrainingOptions run_options(const cxxopts::ParseResult& args, int64_t batch_size,
                                const tr::OptimizerOptions& optimizer) {
  const std::string run_folder = required(args, "output");
  if (args.count("resume")) std::cerr << kProgram << ": resuming " << run_folder << "\n";
  return tr::TrainingOptions()
      .epochs(args["epochs"].as<int64_t>())
      .batch_size(args.count("batch-size") ? args["batch-size"].as<int64_t>() : batch_size)
      .workers(worker_count(args))
      .optimizer(optimizer_options(args, optimizer))
      .run_folder(run_folder)
      .resume(args.count("resume") > 0)
      .seed(args["seed"].as<uint64_t>());
}

int report(const tr::TrainingResult& result, const std::string& run_folder) {
  std::printf("%s: %lld epochs done; best validation F1 %.4f at epoch %lld -> %s/best.pt\n",
              kProgram, static_cast<long long>(result.state.epoch), result.state.best_f1,
              static_cast<long long>(result.state.best_epoch), run_folder.c_str());
  return 0;
}

int train_classifier(const cxxopts::ParseResult& args, std::shared_ptr<ct::ScanLibrary> scans) {
  const auto candidates = tr::read_labelled_candidates(
      required(args, "candidates"), label_column(args["task"].as<std::string>()));
  const auto split = tr::split_by_series(candidates, args["val-stride"].as<int64_t>());
  auto training_options = tr::ChunkDatasetOptions()
                              .balanced(args["balanced"].as<int64_t>())
                              .epoch_size(args["epoch-size"].as<int64_t>())
                              .seed(args["seed"].as<uint64_t>());
  if (args.count("augment")) training_options.augmentation(tr::book_chunk_augmentation());
  const tr::ChunkDataset training(split.training, scans, training_options);
  const tr::ChunkDataset validation(split.validation, scans, tr::ChunkDatasetOptions().shuffle(false));
  std::cerr << kProgram << ": " << *training.size() << " training samples per epoch ("
            << training.positives() << " positive, " << training.negatives()
            << " negative candidates), " << *validation.size() << " validation ("
            << validation.positives() << " positive)\n";
  auto model = make_model(args);
  const auto options = run_options(args, 32, args.count("finetune") ? tr::book_finetuning_optimizer()
                                                                    : tr::book_classification_optimizer());
  std::unique_ptr<apps::ProgressBar> bar;
  return report(tr::train_classifier(model, training, validation, options, progress_callbacks(bar)),
                options.run_folder());
}

int train_segmentation(const cxxopts::ParseResult& args, std::shared_ptr<ct::ScanLibrary> scans) {
  if (args.count("finetune")) throw UsageError("--finetune is for the classifier tasks");
  const auto nodules = ct::read_annotations(required(args, "candidates"));
  const auto split = tr::split_by_series(nodules, args["val-stride"].as<int64_t>());
  auto training_options = tr::SliceDatasetOptions().seed(args["seed"].as<uint64_t>());
  if (args.count("augment")) training_options.augmentation(tr::book_slice_augmentation());
  const tr::SliceDataset training(split.training, scans, training_options);
  const tr::SliceDataset validation(split.validation, scans,
                                    tr::SliceDatasetOptions().window(0).shuffle(false));
  std::cerr << kProgram << ": " << *training.size() << " training crops per epoch, "
            << *validation.size() << " validation slices\n";
  UNetWrapper model = args.count("init") ? weights::load_model<UNetWrapper>(args["init"].as<std::string>())
                                         : UNetWrapper(book_segmentation_options());
  const auto options = run_options(args, 16, tr::book_segmentation_optimizer());
  std::unique_ptr<apps::ProgressBar> bar;
  return report(tr::train_segmentation(model, training, validation, options, progress_callbacks(bar)),
                options.run_folder());
}

// One run at a time in a run folder: two would mix their metrics and checkpoints.
apps::FileLock lock_run_folder(const std::string& run_folder) {
  std::filesystem::create_directories(run_folder);
  apps::FileLock lock;
  if (const auto holder = lock.try_lock((std::filesystem::path(run_folder) / ".train.lock").string(),
                                        "training")) {
    throw UsageError("the run folder '" + run_folder + "' is in use by " + holder->who +
                     " (one training run per folder)");
  }
  return lock;
}

int run(const cxxopts::ParseResult& args) {
  required(args, "output");
  const std::string task = args["task"].as<std::string>();
  if (task != "segmentation") label_column(task);  // rejects an unknown task before any reading
  // Bad --init/--finetune, --workers, --lr, --momentum are refused before the scans are read.
  check_model_source(args);
  worker_count(args);
  optimizer_options(args, tr::book_classification_optimizer());
  // An epoch's sample order is held in memory (8 bytes a sample); LUNA has 551,065 candidates.
  constexpr int64_t kLargestEpoch = 10'000'000;
  const int64_t epoch_size = args["epoch-size"].as<int64_t>();
  if (epoch_size < 0 || epoch_size > kLargestEpoch) {
    throw UsageError("--epoch-size " + std::to_string(epoch_size) + ": must be 0 to " +
                     std::to_string(kLargestEpoch));
  }
  const auto run_lock = lock_run_folder(required(args, "output"));
  auto scans = std::make_shared<ct::ScanLibrary>(required(args, "scans"));
  apps::set_threads(args["threads"].as<int>());
  return task == "segmentation" ? train_segmentation(args, scans) : train_classifier(args, scans);
}

}  // namespace
}  // namespace dlwpt

int main(int argc, char** argv) { return dlwpt::apps::run_app(dlwpt::kProgram, argc, argv, dlwpt::make_options(), dlwpt::run); }
