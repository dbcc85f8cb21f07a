#include "dlwpt/training/trainer.h"

#include <cmath>

#include <chrono>
#include <filesystem>
#include <optional>

#include <torch/torch.h>

#include "dlwpt/training/losses.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::training {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What a batch gives the metrics: its loss, and what was predicted positive against what is.
struct StepOutcome {
  torch::Tensor loss;
  torch::Tensor predicted;
  torch::Tensor actual;
};

// Runs one phase over `data`: with `optimizer` a training pass, without it an evaluation.
template <typename Model, typename Dataset, typename Step>
EpochMetrics run_phase(Model& model, const Dataset& data, const TrainingOptions& options,
                       torch::optim::Optimizer* optimizer, int64_t epoch, const std::string& phase,
                       const TrainingCallbacks& callbacks, const Step& step) {
  TORCH_CHECK(options.batch_size() > 0 && options.workers() >= 0,
              "batch size must be > 0 and workers >= 0");
  auto loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
      Dataset(data).map(torch::data::transforms::Stack<>()),
      torch::data::DataLoaderOptions()
          .batch_size(static_cast<size_t>(options.batch_size()))
          .workers(static_cast<size_t>(options.workers())));
  const bool training = optimizer != nullptr;
  model->train(training);
  std::optional<torch::NoGradGuard> no_grad;
  if (!training) no_grad.emplace();

  EpochMetrics metrics;
  metrics.epoch = epoch;
  metrics.phase = phase;
  const auto start = Clock::now();
  const int64_t samples = static_cast<int64_t>(*data.size());
  const int64_t batches = (samples + options.batch_size() - 1) / options.batch_size();
  int64_t done = 0;
  double loss_sum = 0;
  for (auto& batch : *loader) {
    if (training) optimizer->zero_grad();
    const StepOutcome outcome = step(model, batch);
    const double batch_loss = outcome.loss.item<double>();
    if (!std::isfinite(batch_loss)) {
      // Stopped before the step, so that no checkpoint or best.pt ever holds diverged weights.
      throw Error("the " + phase + " loss became " + std::to_string(batch_loss) + " in epoch " +
                  std::to_string(epoch) + ", batch " + std::to_string(done + 1) +
                  ": the training diverged (lower --lr or --momentum)");
    }
    if (training) {
      outcome.loss.backward();
      optimizer->step();
    }
    const int64_t size = batch.data.size(0);
    loss_sum += batch_loss * static_cast<double>(size);
    metrics.samples += size;
    metrics.counts.add(outcome.predicted, outcome.actual);
    if (callbacks.batch_done) callbacks.batch_done(epoch, phase, ++done, batches);
  }
  metrics.loss = metrics.samples > 0 ? loss_sum / static_cast<double>(metrics.samples) : 0;
  metrics.seconds = seconds_since(start);
  return metrics;
}

std::string metrics_path(const TrainingOptions& options) {
  return (fs::path(options.run_folder()) / "metrics.csv").string();
}

void record(const EpochMetrics& metrics, const TrainingOptions& options,
            const TrainingCallbacks& callbacks, TrainingResult& result) {
  if (!options.run_folder().empty()) {
    append_metrics_csv(metrics_path(options), metrics);
  }
  if (callbacks.phase_done) callbacks.phase_done(metrics);
  result.history.push_back(metrics);
}

// Epochs of training and validation, the best model, checkpoints and resumption: the loop
// both models share; `step` is what differs.
template <typename Model, typename Dataset, typename Step>
TrainingResult run_training(Model& model, const Dataset& training, const Dataset& validation,
                            const TrainingOptions& options, const TrainingCallbacks& callbacks,
                            const Step& step) {
  TORCH_CHECK(options.epochs() >= 1, "epochs must be >= 1, got ", options.epochs());
  TORCH_CHECK(!options.resume() || !options.run_folder().empty(),
              "resuming needs the run folder of the checkpoint");
  auto optimizer = make_optimizer(model->parameters(), options.optimizer());
  const auto config = weights::to_model_config(model->options);
  const std::string checkpoint = (fs::path(options.run_folder()) / "checkpoint").string();

  TrainingResult result;
  result.state.seed = options.seed();
  if (options.resume()) {
    result.state = load_checkpoint(checkpoint, *model, config, *optimizer);
    TORCH_CHECK(result.state.seed == options.seed(), "the checkpoint's run used seed ",
                result.state.seed, ", not ", options.seed(), "; resuming needs the same seed");
    // Rows of epochs after the checkpoint (a run killed before saving it) are run again.
    truncate_metrics_csv(metrics_path(options), result.state.epoch);
  } else if (!options.run_folder().empty()) {
    TORCH_CHECK(!has_checkpoint(checkpoint), "'", options.run_folder(),
                "' already holds a run; resume it or choose another folder");
    fs::create_directories(options.run_folder());
  }

  for (int64_t epoch = result.state.epoch + 1; epoch <= options.epochs(); ++epoch) {
    record(run_phase(model, training.for_epoch(epoch), options, optimizer.get(), epoch, "train",
                     callbacks, step),
           options, callbacks, result);
    const auto validated =
        run_phase(model, validation, options, nullptr, epoch, "val", callbacks, step);
    record(validated, options, callbacks, result);
    result.state.epoch = epoch;
    if (validated.counts.f1() > result.state.best_f1) {
      result.state.best_f1 = validated.counts.f1();
      result.state.best_epoch = epoch;
      if (!options.run_folder().empty()) {
        weights::save_archive(*model, (fs::path(options.run_folder()) / "best.pt").string(), config);
      }
    }
    if (!options.run_folder().empty()) {
      save_checkpoint(checkpoint, *model, config, *optimizer, result.state);
    }
  }
  return result;
}

}  // namespace

TrainingResult train_classifier(LunaModel& model, const ChunkDataset& training,
                                const ChunkDataset& validation, const TrainingOptions& options,
                                const TrainingCallbacks& callbacks) {
  const double threshold = options.threshold();
  return run_training(model, training, validation, options, callbacks,
                      [threshold](LunaModel& luna, const torch::data::Example<>& batch) {
                        const auto output = luna(batch.data);
                        return StepOutcome{classification_loss(output.logits, batch.target),
                                           output.probabilities.select(1, 1).detach() > threshold,
                                           batch.target == 1};
                      });
}

TrainingResult train_segmentation(UNetWrapper& model, const SliceDataset& training,
                                  const SliceDataset& validation, const TrainingOptions& options,
                                  const TrainingCallbacks& callbacks) {
  const double threshold = options.threshold();
  return run_training(model, training, validation, options, callbacks,
                      [threshold](UNetWrapper& unet, const torch::data::Example<>& batch) {
                        const auto prediction = unet(batch.data);
                        return StepOutcome{segmentation_loss(prediction, batch.target),
                                           prediction.detach() > threshold, batch.target > 0.5};
                      });
}

}  // namespace dlwpt::training
