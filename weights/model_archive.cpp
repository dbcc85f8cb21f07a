#include "dlwpt/weights/model_archive.h"

#include <algorithm>

#include "dlwpt/models/inference.h"
#include "dlwpt/weights/model_schema.h"

namespace dlwpt::weights {

namespace {

template <typename Model>
using OptionsOf = typename Model::Impl::Options;

template <typename Model>
const char* class_of() {
  return python_class<OptionsOf<Model>>();
}

template <typename Options>
ModelConfig config_of(const Options& options) {
  ModelConfig config;
  config.model = python_class<Options>();
  for (const auto& option : model_schema<Options>()) config.options[option.name] = option.write(options);
  return config;
}

// Every option the schema requires, and no option it does not know (a typo, or an archive of
// a newer version, must not silently build another model).
template <typename Options>
Options options_of(const ModelConfig& config) {
  const auto& schema = model_schema<Options>();
  for (const auto& entry : config.options) {
    const bool known = std::any_of(schema.begin(), schema.end(),
                                   [&](const auto& option) { return option.name == entry.first; });
    if (!known) {
      throw ArchiveError("the " + config.model + " configuration has an unknown option '" +
                         entry.first + "'");
    }
  }
  Options options;
  for (const auto& option : schema) {
    if (option.required || config.options.count(option.name)) option.read(config, options);
  }
  return options;
}

template <typename Options>
void check_bounds(const Options& options) {
  for (const auto& option : model_schema<Options>()) option.check(options);
}

// A strict load needs the model to hold exactly the archive's values; checked in closed form
// before building, so that a configuration describing a huge model (wf=12: 30 GB) fails
// without allocating it.
template <typename Model>
void check_size(const TensorMap& tensors, const typename Model::Impl::Options& options) {
  int64_t held = 0;
  for (const auto& [name, tensor] : tensors) {
    // Zero strides let a hostile archive give a tensor any size over one value.
    if (__builtin_add_overflow(held, tensor.numel(), &held)) held = -1;
  }
  const int64_t described = Model::Impl::state_numel(options);
  if (described != held) {
    throw ArchiveError(std::string("configuration describes a ") + class_of<Model>() + " of " + std::to_string(described) +
                       " values, the archive holds " + std::to_string(held));
  }
}

}  // namespace

template <typename Model>
void check_fits(const TensorMap& tensors, const typename Model::Impl::Options& options) {
  check_bounds(options);
  check_size<Model>(tensors, options);
}

template void check_fits<ResNetGenerator>(const TensorMap&, const ResNetGeneratorOptions&);
template void check_fits<LunaModel>(const TensorMap&, const LunaModelOptions&);
template void check_fits<UNetWrapper>(const TensorMap&, const UNetWrapperOptions&);

namespace {

// A model trained into NaN or infinity would answer every input with NaN: such an archive is
// broken, not a model.
void check_finite(const TensorMap& tensors) {
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.is_floating_point()) continue;
    const int64_t bad = tensor.numel() - torch::isfinite(tensor).sum().item<int64_t>();
    if (bad > 0) {
      throw ArchiveError("tensor '" + name + "' holds " + std::to_string(bad) +
                         " non-finite values (NaN or infinity): the model it was saved from diverged");
    }
  }
}

template <typename Model>
Model build_and_load(const Archive& archive, const std::string& path,
                     const typename Model::Impl::Options& options) {
  try {
    check_fits<Model>(archive.tensors, options);
    check_finite(archive.tensors);
    Model model(options);
    load_state_dict(*model, archive.tensors);
    model->eval();
    return model;
  } catch (const ArchiveError& error) {
    throw ArchiveError("weights archive '" + path + "': " + error.what());
  } catch (const ConfigError& error) {
    throw ConfigError("weights archive '" + path + "': " + error.what());
  } catch (const c10::Error& error) {  // options the model rejects
    throw ArchiveError("weights archive '" + path + "': " + error.what_without_backtrace());
  }
}

// The model the archive's configuration describes, with the archive's weights.
template <typename Model>
Model model_from_archive(const Archive& archive, const std::string& path) {
  const std::string expected = class_of<Model>();
  if (!archive.model_config) {
    throw ArchiveError("weights archive '" + path + "' does not say which model it holds (no " +
                       ModelConfig::kArchiveEntry + "): give the " + expected +
                       " options explicitly, or convert it with tools/convert.py");
  }
  if (archive.model_config->model != expected) {
    throw ArchiveError("weights archive '" + path + "' holds a " + archive.model_config->model +
                       ", not a " + expected);
  }
  typename Model::Impl::Options options = [&] {
    try {
      return options_of<OptionsOf<Model>>(*archive.model_config);
    } catch (const ArchiveError& error) {
      throw ArchiveError("weights archive '" + path + "': " + error.what());
    }
  }();
  return build_and_load<Model>(archive, path, options);
}

}  // namespace

ModelConfig to_model_config(const ResNetGeneratorOptions& options) { return config_of(options); }
ModelConfig to_model_config(const LunaModelOptions& options) { return config_of(options); }
ModelConfig to_model_config(const UNetWrapperOptions& options) { return config_of(options); }

ResNetGeneratorOptions resnet_generator_options(const ModelConfig& config) {
  return options_of<ResNetGeneratorOptions>(config);
}

LunaModelOptions luna_model_options(const ModelConfig& config) {
  return options_of<LunaModelOptions>(config);
}

UNetWrapperOptions unet_wrapper_options(const ModelConfig& config) {
  return options_of<UNetWrapperOptions>(config);
}

template <typename Model>
Model load_model(const std::string& path) {
  return model_from_archive<Model>(read_archive(path), path);
}

template <typename Model>
Model load_model(const std::string& path, torch::Device device) {
  Model model = load_model<Model>(path);
  try {
    model->to(device);
  } catch (const c10::Error& error) {  // a device this libtorch or machine lacks
    throw ConfigError("cannot place the model of '" + path + "' on device " + device.str() + ": " +
                      first_line(error.what_without_backtrace()));
  }
  return model;
}

template <typename Model>
Model load_model(const std::string& path, const typename Model::Impl::Options& options) {
  return build_and_load<Model>(read_archive(path), path, options);
}

template ResNetGenerator load_model<ResNetGenerator>(const std::string&);
template LunaModel load_model<LunaModel>(const std::string&);
template UNetWrapper load_model<UNetWrapper>(const std::string&);
template ResNetGenerator load_model<ResNetGenerator>(const std::string&, torch::Device);
template LunaModel load_model<LunaModel>(const std::string&, torch::Device);
template UNetWrapper load_model<UNetWrapper>(const std::string&, torch::Device);
template ResNetGenerator load_model<ResNetGenerator>(const std::string&,
                                                     const ResNetGeneratorOptions&);
template LunaModel load_model<LunaModel>(const std::string&, const LunaModelOptions&);
template UNetWrapper load_model<UNetWrapper>(const std::string&, const UNetWrapperOptions&);

template <typename Model>
void save_model(const Model& model, const std::string& path) {
  save_archive(*model, path, to_model_config(model->options));
}

template void save_model<ResNetGenerator>(const ResNetGenerator&, const std::string&);
template void save_model<LunaModel>(const LunaModel&, const std::string&);
template void save_model<UNetWrapper>(const UNetWrapper&, const std::string&);

namespace {

NamedOutputs named_outputs(const torch::Tensor& output) { return {{"output", output}}; }

NamedOutputs named_outputs(const LunaModelOutput& output) {
  return {{"logits", output.logits}, {"probabilities", output.probabilities}};
}

}  // namespace

std::vector<std::string> output_names(const std::string& python_class) {
  if (python_class == class_of<LunaModel>()) return {"logits", "probabilities"};
  return {"output"};
}

namespace {

template <typename Model>
AnyModel any_model(const ModelConfig& config, Model model, Optimization optimization,
                   const InferenceOptions& inference) {
  if (optimization == Optimization::for_inference) optimize_for_inference(model, inference);
  auto forward = [model, optimization](const torch::Tensor& x) mutable {
    return optimization == Optimization::for_inference ? forward_each_sample(model, x) : model(x);
  };
  return {config, model.ptr(), [forward](const torch::Tensor& x) mutable {
            return named_outputs(forward(x));
          }};
}

}  // namespace

template <typename Model>
AnyModel as_any_model(Model model, Optimization optimization, const InferenceOptions& inference) {
  const ModelConfig config = to_model_config(model->options);  // before the model is moved
  return any_model(config, std::move(model), optimization, inference);
}

template AnyModel as_any_model<ResNetGenerator>(ResNetGenerator, Optimization, const InferenceOptions&);
template AnyModel as_any_model<LunaModel>(LunaModel, Optimization, const InferenceOptions&);
template AnyModel as_any_model<UNetWrapper>(UNetWrapper, Optimization, const InferenceOptions&);

AnyModel load_any_model(const std::string& path, Optimization optimization, const InferenceOptions& inference) {
  const Archive archive = read_archive(path);
  if (!archive.model_config) {
    throw ArchiveError("weights archive '" + path + "' does not say which model it holds (no " +
                       std::string(ModelConfig::kArchiveEntry) + ")");
  }
  const ModelConfig& config = *archive.model_config;
  if (config.model == class_of<ResNetGenerator>()) {
    return any_model(config, model_from_archive<ResNetGenerator>(archive, path), optimization, inference);
  }
  if (config.model == class_of<UNetWrapper>()) {
    return any_model(config, model_from_archive<UNetWrapper>(archive, path), optimization, inference);
  }
  if (config.model == class_of<LunaModel>()) {
    return any_model(config, model_from_archive<LunaModel>(archive, path), optimization, inference);
  }
  throw ArchiveError("weights archive '" + path + "' holds an unknown model '" + config.model +
                     "'");
}

}  // namespace dlwpt::weights
