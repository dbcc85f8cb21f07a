#include "apps/serve/served_model.h"

#include <algorithm>
#include <regex>

#include <torch/torch.h>

#include "apps/serve/torch_threads.h"
#include "apps/zebraify/zebra.h"
#include "dlwpt/weights/errors.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::serve {

namespace {

// The seed of `--model NAME=untrained`, so that two servers answer alike.
constexpr uint64_t kUntrainedSeed = 0;

// Makes one instance of an archive's model (load_any_model: prepared for inference, run
// sample by sample) or, without a configuration, of a seeded untrained one.
template <typename Model>
std::function<Forward()> new_instances_of(const std::optional<weights::ModelConfig>& config,
                                          const typename Model::Impl::Options& options,
                                          const std::string& path, Precision precision) {
  return [config, options, path, precision] {
    torch::manual_seed(kUntrainedSeed);
    const auto inference = InferenceOptions().precision(precision);
    constexpr auto prepared = weights::Optimization::for_inference;
    return config ? weights::load_any_model(path, prepared, inference).forward
                  : weights::as_any_model(Model(options), prepared, inference).forward;
  };
}

ModelKind kind_of_class(const std::string& python_class, const std::string& path) {
  if (python_class == "ResNetGenerator") return ModelKind::zebra;
  if (python_class == "LunaModel") return ModelKind::nodule;
  if (python_class == "UNetWrapper") return ModelKind::segmentation;
  throw weights::ArchiveError("weights archive '" + path + "' holds a " + python_class +
                              ", which dlwpt-serve does not serve");
}

ModelKind kind_of_name(const std::string& name) {
  if (name == "zebra") return ModelKind::zebra;
  if (name == "nodule") return ModelKind::nodule;
  if (name == "segmentation") return ModelKind::segmentation;
  throw UsageError("--model " + name + "=untrained: an untrained model must be named zebra, "
                   "nodule or segmentation, which says which model to build");
}

std::vector<TensorSpec> luna_specs_in(const LunaModelOptions& options) {
  const auto& chunk = options.chunk_size();
  return {{"input", {-1, options.in_channels(), chunk[0], chunk[1], chunk[2]}}};
}

std::vector<TensorSpec> luna_specs_out() {
  return {{"logits", {-1, 2}}, {"probabilities", {-1, 2}}};
}

}  // namespace

const char* kind_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::zebra:
      return "ResNetGenerator";
    case ModelKind::nodule:
      return "LunaModel";
    case ModelKind::segmentation:
      return "UNetWrapper";
  }
  return "unknown";
}

ModelSource parse_model_source(const std::string& text) {
  static const std::regex form("([A-Za-z0-9_.-]{1,64})=(.+)");
  std::smatch match;
  if (!std::regex_match(text, match, form)) {
    throw UsageError("--model '" + text + "': expected NAME=ARCHIVE or NAME=untrained, NAME of " +
                     "letters, digits, '_', '.', '-'");
  }
  return {match[1], match[2]};
}

ModelPlacement default_placement(ModelKind kind, ModelPlacement asked) {
  const int cores = std::max(1, asked.cores);
  if (asked.instances == 0) asked.instances = kind == ModelKind::nodule ? cores : 1;
  if (asked.threads == 0) asked.threads = std::max(1, cores / asked.instances);
  return asked;
}

ServedModel::ServedModel(const ModelSource& source, const BatcherOptions& batching, ModelPlacement placement,
                         std::function<void(const std::string&, const BatchStats&)> on_batch)
    : name_(source.name), source_(source) {
  const bool untrained = source.source == "untrained";
  std::optional<weights::ModelConfig> config;
  if (untrained) {
    kind_ = kind_of_name(name_);
    trained_ = false;
  } else {
    config = weights::read_archive(source.source).model_config;
    // An archive without a configuration can only be the book's traced CycleGAN wrapper.
    kind_ = config ? kind_of_class(config->model, source.source) : ModelKind::zebra;
  }
  description_ = std::string(kind_name(kind_)) +
                 (untrained ? ", UNTRAINED seeded weights (seed 0): answers are meaningless"
                            : " from " + source.source);
  placement = default_placement(kind_, placement);
  if (placement.precision == Precision::int8 && kind_ != ModelKind::zebra) {
    throw UsageError("--precision int8 serves CycleGAN generators only: " + name_ + " is a " + kind_name(kind_) +
                     ", whose int8 form changes the CT mask and candidates (README, \"Reduced precision\")");
  }
  const int instances = placement.instances;
  description_ += ", " + std::to_string(instances) + (instances == 1 ? " instance" : " instances") +
                  " of " + std::to_string(placement.threads) +
                  (placement.threads == 1 ? " thread" : " threads") +
                  (placement.precision == Precision::float32 ? "" : ", " + to_string(placement.precision));

  // Each instance is a model of its own, loaded (or seeded) alike: forward passes never share
  // a module between runner threads.
  std::function<Forward()> new_instance;
  switch (kind_) {
    case ModelKind::zebra: {
      new_instance = [untrained, path = source.source, precision = placement.precision,
                      calibration = placement.int8_calibration]() -> Forward {
        const auto zebraifier = std::make_shared<zebraify::Zebraifier>(
            untrained ? zebraify::Zebraifier::untrained(kUntrainedSeed, precision)
                      : zebraify::Zebraifier::from_archive(path, zebraify::Engine::native, precision));
        if (zebraifier->needs_calibration()) {
          if (!calibration || calibration->pictures.empty()) {
            throw UsageError("--precision int8 needs pictures to calibrate on (--calibrate-on)");
          }
          zebraifier->calibrate(calibration->pictures, calibration->max_side);
        }
        return [zebraifier](const torch::Tensor& x) { return TensorMap{{"output", zebraifier->forward(x)}}; };
      };
      inputs_ = {{"input", {-1, 3, -1, -1}}};
      outputs_ = {{"output", {-1, 3, -1, -1}}};
      side_multiple_ = zebraify::kSideMultiple;
      break;
    }
    case ModelKind::nodule: {
      const LunaModelOptions options = config ? weights::luna_model_options(*config) : LunaModelOptions();
      new_instance = new_instances_of<LunaModel>(config, options, source.source, placement.precision);
      inputs_ = luna_specs_in(options);
      outputs_ = luna_specs_out();
      break;
    }
    case ModelKind::segmentation: {
      const UNetWrapperOptions options =
          config ? weights::unet_wrapper_options(*config) : book_segmentation_options();
      new_instance = new_instances_of<UNetWrapper>(config, options, source.source, placement.precision);
      inputs_ = {{"input", {-1, options.in_channels(), -1, -1}}};
      outputs_ = {{"output", {-1, options.n_classes(), -1, -1}}};
      side_multiple_ = int64_t{1} << (options.depth() - 1);
      break;
    }
  }
  admission_ = AdmissionLimit(batching.max_queue_size() + instances * batching.max_batch_size());
  std::vector<DynamicBatcher<torch::Tensor, ModelResult>::RunBatch> runs;
  for (int i = 0; i < instances; ++i) {
    runs.push_back([this, threads = placement.threads, forward = new_instance()](std::vector<torch::Tensor>& inputs) {
      set_torch_threads_of_this_thread(threads);  // this runner's own count (torch_threads.h)
      return run_batch(forward, inputs);
    });
  }
  batcher_ = std::make_unique<DynamicBatcher<torch::Tensor, ModelResult>>(
      batching, std::move(runs), [this, on_batch](const BatchStats& stats) {
        if (on_batch) on_batch(name_, stats);
      });
}

ServedModel::~ServedModel() { stop(); }

void ServedModel::check_input(const torch::Tensor& input) const {
  check_tensor(inputs_.front(), input);
  if (side_multiple_ == 1) return;
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  const int64_t min_side = kind_ == ModelKind::zebra ? zebraify::kMinSide : side_multiple_;
  if (height % side_multiple_ || width % side_multiple_ || std::min(height, width) < min_side) {
    throw RequestError(400, "input \"input\" is " + std::to_string(height) + "x" +
                                std::to_string(width) + " pixels; " + name_ +
                                " needs sides that are multiples of " +
                                std::to_string(side_multiple_) + ", at least " +
                                std::to_string(min_side));
  }
}

std::future<ModelResult> ServedModel::submit(torch::Tensor input, Clock::time_point deadline,
                                             std::shared_ptr<void> admission) {
  return batcher_->submit(std::move(input), deadline, std::move(admission));
}

int64_t ServedModel::queue_size() const { return batcher_->queue_size(); }

void ServedModel::stop() {
  if (batcher_) batcher_->stop();
}

// Requests whose samples have the same size run as one batch (one call of the model), the
// others one after another; each request gets its own rows of the outputs.
std::vector<ModelResult> ServedModel::run_batch(const Forward& forward, std::vector<torch::Tensor>& inputs) {
  torch::InferenceMode inference;
  const auto start = Clock::now();
  std::vector<ModelResult> results(inputs.size());
  size_t first = 0;
  while (first < inputs.size()) {
    size_t end = first + 1;
    while (end < inputs.size() && inputs[end].sizes().slice(1) == inputs[first].sizes().slice(1)) {
      ++end;
    }
    const std::vector<torch::Tensor> group(inputs.begin() + first, inputs.begin() + end);
    const TensorMap outputs = forward(group.size() == 1 ? group.front() : torch::cat(group));
    int64_t row = 0;
    for (size_t i = first; i < end; ++i) {
      const int64_t rows = inputs[i].size(0);
      for (const auto& [output_name, tensor] : outputs) {
        results[i].outputs[output_name] = tensor.narrow(0, row, rows);
      }
      row += rows;
    }
    first = end;
  }
  const auto compute = Clock::now() - start;
  for (auto& result : results) {
    result.batch_size = static_cast<int64_t>(inputs.size());
    result.compute = compute;
  }
  return results;
}

}  // namespace dlwpt::serve
