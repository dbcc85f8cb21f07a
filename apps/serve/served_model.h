#pragma once

// A model as dlwpt-serve serves it: loaded once, described by v2 tensor specs, and run only on
// its own runner thread (a DynamicBatcher), inside torch::InferenceMode with the intra-op
// threads the server set once.

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "apps/common/image_io.h"
#include "apps/serve/batcher.h"
#include "apps/serve/protocol.h"
#include "dlwpt/models/inference.h"

namespace dlwpt::serve {

/// One model instance's forward: a batch to its named outputs.
using Forward = std::function<TensorMap(const torch::Tensor&)>;

/// What the runner gives back for one request: its outputs (the request's rows of the
/// batch), and how the batch it ran in went.
struct ModelResult {
  TensorMap outputs;
  int64_t batch_size = 0;   ///< requests in the batch
  Clock::duration compute{};  ///< the model's time for the whole batch
};

/// The three models of the book, as the server knows them.
enum class ModelKind {
  zebra,         ///< CycleGAN ResNetGenerator: "input" N x 3 x H x W in [0, 1] -> "output" in [0, 1]
  nodule,        ///< LunaModel: "input" N x 1 x 32 x 48 x 48 -> "logits", "probabilities" N x 2
  segmentation,  ///< UNetWrapper: "input" N x 7 x H x W -> "output" N x 1 x H x W
};

const char* kind_name(ModelKind kind);

/// Where a served model comes from: `--model NAME=SOURCE`.
struct ModelSource {
  std::string name;    ///< its name in URLs (/v2/models/NAME)
  std::string source;  ///< an archive path, or "untrained" (the name then says which model)
};

/// What sets an int8 CycleGAN generator's scales: pictures like the ones it will convert,
/// scaled down to a longer side of `max_side` as PUT /image scales requests (0: not scaled).
struct Int8Calibration {
  std::vector<apps::RgbImage> pictures;
  int64_t max_side = 0;
};

/// How many copies of a model run at once (`instances`, each on a runner thread of its own)
/// with how many intra-op threads each; 0 takes the model's default for `cores`.
struct ModelPlacement {
  int instances = 0;
  int threads = 0;
  int cores = 1;
  /// The number format the instances compute in (models/inference.h); inputs and outputs
  /// stay float32. int8 is served for CycleGAN generators only, calibrated on
  /// `int8_calibration` (the CT models' masks and candidates change in int8: README).
  Precision precision = Precision::float32;
  std::shared_ptr<const Int8Calibration> int8_calibration;
};

/// The placement a model kind runs best with, measured with tools/dev.sh bench-serve on two
/// cores: LunaModel's small chunks as one single-threaded instance per core (248 chunks/s at
/// 64 connections against 164/s for one two-threaded instance); the U-Net and the CycleGAN
/// generator, whose activations outgrow the caches, as one instance on every core (U-Net
/// slices 11.6/s against 10.8/s, in 30% less memory). Zeros in `asked` are filled in.
ModelPlacement default_placement(ModelKind kind, ModelPlacement asked);

/// Parses "NAME=PATH" or "NAME=untrained"; UsageError otherwise.
ModelSource parse_model_source(const std::string& text);

class ServedModel {
 public:
  /// Loads the model (strictly, as the apps do) once per instance (default_placement) and
  /// starts a runner thread for each, all taking batches from one queue. An archive's kind is what it holds;
  /// "untrained" builds the model its name names (zebra, nodule or segmentation) with seeded
  /// random weights, and says so in `description()`.
  ServedModel(const ModelSource& source, const BatcherOptions& batching, ModelPlacement placement,
              std::function<void(const std::string& model, const BatchStats&)> on_batch);
  ~ServedModel();
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  const std::string& name() const { return name_; }
  const ModelSource& source() const { return source_; }
  ModelKind kind() const { return kind_; }
  bool trained() const { return trained_; }
  /// "LunaModel from pretrained/classifier.pt", "ResNetGenerator, UNTRAINED seeded weights".
  const std::string& description() const { return description_; }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }

  /// Checks an input batch against the specs and the model's own constraints (image sides
  /// the network can halve); RequestError (400) naming the problem.
  void check_input(const torch::Tensor& input) const;

  /// Queues a checked input batch; see DynamicBatcher::submit for what the future may hold
  /// and how long `admission` is held.
  std::future<ModelResult> submit(torch::Tensor input, Clock::time_point deadline,
                                  std::shared_ptr<void> admission = {});

  int64_t queue_size() const;
  /// Admission before a request's body is read: room for a full queue and a batch on every
  /// instance (the server answers 503 beyond).
  AdmissionLimit& admission() { return admission_; }
  /// Refuses new requests, finishes the queued ones, stops the runner.
  void stop();

 private:
  std::vector<ModelResult> run_batch(const Forward& forward, std::vector<torch::Tensor>& inputs);

  std::string name_;
  ModelSource source_;
  ModelKind kind_ = ModelKind::nodule;
  bool trained_ = true;
  std::string description_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  int64_t side_multiple_ = 1;  ///< image sides must be multiples of this (zebra, segmentation)
  AdmissionLimit admission_{1};
  std::unique_ptr<DynamicBatcher<torch::Tensor, ModelResult>> batcher_;  // last: uses the above
};

}  // namespace dlwpt::serve
