#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dlwpt/models/inference.h"
#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"
#include "dlwpt/weights/archive.h"

namespace dlwpt::weights {

/// Options of each model as stored in an archive's `dlwpt_model.cfg` (option names as the
/// Python constructors' keyword arguments), and back.
ModelConfig to_model_config(const ResNetGeneratorOptions& options);
ModelConfig to_model_config(const LunaModelOptions& options);
ModelConfig to_model_config(const UNetWrapperOptions& options);
ResNetGeneratorOptions resnet_generator_options(const ModelConfig& config);
LunaModelOptions luna_model_options(const ModelConfig& config);
UNetWrapperOptions unet_wrapper_options(const ModelConfig& config);

/// Builds the native model an archive's configuration describes and loads its weights
/// strictly, in eval mode. `Model` is ResNetGenerator, LunaModel or UNetWrapper. Throws
/// ArchiveError when the archive holds another model, has no configuration, or its tensors
/// do not fit (checked first in closed form, `state_numel`, so that nothing is allocated for
/// a configuration that describes another size); ConfigError for options out of the bounds a
/// loadable model can have. Both name the file.
template <typename Model>
Model load_model(const std::string& path);

/// The same, the model then moved to `device` (its parameters and buffers: the archive is
/// always read on the CPU); ConfigError when this libtorch or machine has no such device. The
/// pipelines (ct/pipeline.h) run their inputs on the device of the models they are given.
template <typename Model>
Model load_model(const std::string& path, torch::Device device);

/// The same with options given by the caller, for archives without a configuration (the
/// strict load still checks every tensor against them).
template <typename Model>
Model load_model(const std::string& path, const typename Model::Impl::Options& options);

/// What `load_model` checks before it builds a model from untrusted options: ConfigError for
/// options beyond the bounds of any loadable model, ArchiveError when the model would not
/// hold exactly as many values as `tensors` ("configuration describes a UNetWrapper of N
/// values, the archive holds M"; counted in closed form, `state_numel`, nothing allocated).
template <typename Model>
void check_fits(const TensorMap& tensors, const typename Model::Impl::Options& options);

/// Saves the model's weights with its configuration, so that `load_model` rebuilds it.
template <typename Model>
void save_model(const Model& model, const std::string& path);

}  // namespace dlwpt::weights

namespace dlwpt::weights {

/// Named outputs of a model: {"output"} for ResNetGenerator and UNetWrapper, {"logits",
/// "probabilities"} for LunaModel (the names the reference files use).
using NamedOutputs = std::map<std::string, torch::Tensor>;

/// Any of the three native models, built from an archive's configuration, behind one
/// interface: for tools that handle whichever model an archive holds.
struct AnyModel {
  ModelConfig config;
  std::shared_ptr<torch::nn::Module> module;
  std::function<NamedOutputs(const torch::Tensor&)> forward;
};

/// How `load_any_model` prepares the model it loads.
enum class Optimization {
  none,           ///< the model as written, its forward() the book's math
  for_inference,  ///< optimize_for_inference, batches run by forward_each_sample (the apps')
};

/// The native model an archive's configuration names, strictly loaded, in eval mode; prepared
/// for inference with `inference` (its precision) unless `optimization` is none. Its forward
/// takes and gives float32 whatever the precision.
AnyModel load_any_model(const std::string& path,
                        Optimization optimization = Optimization::for_inference,
                        const InferenceOptions& inference = {});

/// The same for a model built in code (seeded random weights, say), prepared likewise; its
/// configuration is its options'.
template <typename Model>
AnyModel as_any_model(Model model, Optimization optimization = Optimization::for_inference,
                      const InferenceOptions& inference = {});

/// Names the outputs of a model class, in the order its forward returns them.
std::vector<std::string> output_names(const std::string& python_class);

}  // namespace dlwpt::weights
