#include "dlwpt/weights/model_archive.h"

namespace dlwpt::weights {

namespace {

std::string bool_text(bool value) { return value ? "true" : "false"; }

ModelConfig make_config(const std::string& model,
                        std::map<std::string, std::string> options) {
  ModelConfig config;
  config.model = model;
  config.options = std::move(options);
  return config;
}

// What load_model and save_model need to know of each model.
template <typename Model>
struct ModelTraits;

template <>
struct ModelTraits<ResNetGenerator> {
  static constexpr const char* python_class = "ResNetGenerator";
  static ResNetGeneratorOptions options(const ModelConfig& c) { return resnet_generator_options(c); }
};

template <>
struct ModelTraits<LunaModel> {
  static constexpr const char* python_class = "LunaModel";
  static LunaModelOptions options(const ModelConfig& c) { return luna_model_options(c); }
};

template <>
struct ModelTraits<UNetWrapper> {
  static constexpr const char* python_class = "UNetWrapper";
  static UNetWrapperOptions options(const ModelConfig& c) { return unet_wrapper_options(c); }
};

// Options read from a file are untrusted: beyond these bounds no model fits in memory, nor its
// size in int64_t (the bounds are far above the book's models).
void check_option(const std::string& model, const std::string& name, int64_t value,
                  int64_t min, int64_t max) {
  if (value < min || value > max) {
    throw ConfigError("option '" + name + "' of the " + model + " configuration is " +
                      std::to_string(value) + "; it must be " + std::to_string(min) + " to " +
                      std::to_string(max));
  }
}

void check_bounds(const ResNetGeneratorOptions& options) {
  const std::string model = ModelTraits<ResNetGenerator>::python_class;
  check_option(model, "input_nc", options.input_nc(), 1, 64);
  check_option(model, "output_nc", options.output_nc(), 1, 64);
  check_option(model, "ngf", options.ngf(), 1, 1024);
  check_option(model, "n_blocks", options.n_blocks(), 0, 64);
}

void check_bounds(const LunaModelOptions& options) {
  const std::string model = ModelTraits<LunaModel>::python_class;
  check_option(model, "in_channels", options.in_channels(), 1, 64);
  check_option(model, "conv_channels", options.conv_channels(), 1, 1024);
  for (int64_t side : options.chunk_size()) check_option(model, "chunk_size", side, 1, 1024);
}

void check_bounds(const UNetWrapperOptions& options) {
  const std::string model = ModelTraits<UNetWrapper>::python_class;
  check_option(model, "in_channels", options.in_channels(), 1, 256);
  check_option(model, "n_classes", options.n_classes(), 1, 256);
  check_option(model, "depth", options.depth(), 1, 10);
  check_option(model, "wf", options.wf(), 0, 12);
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
    throw ArchiveError(std::string("configuration describes a ") +
                       ModelTraits<Model>::python_class + " of " + std::to_string(described) +
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
  const std::string expected = ModelTraits<Model>::python_class;
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
      return ModelTraits<Model>::options(*archive.model_config);
    } catch (const ArchiveError& error) {
      throw ArchiveError("weights archive '" + path + "': " + error.what());
    }
  }();
  return build_and_load<Model>(archive, path, options);
}

}  // namespace

ModelConfig to_model_config(const ResNetGeneratorOptions& options) {
  return make_config("ResNetGenerator", {{"input_nc", std::to_string(options.input_nc())},
                                         {"output_nc", std::to_string(options.output_nc())},
                                         {"ngf", std::to_string(options.ngf())},
                                         {"n_blocks", std::to_string(options.n_blocks())}});
}

ModelConfig to_model_config(const LunaModelOptions& options) {
  // The chunk size is not a Python option: the book's model is fixed to 32 x 48 x 48.
  return make_config("LunaModel", {{"in_channels", std::to_string(options.in_channels())},
                                   {"conv_channels", std::to_string(options.conv_channels())}});
}

ModelConfig to_model_config(const UNetWrapperOptions& options) {
  return make_config("UNetWrapper", {{"in_channels", std::to_string(options.in_channels())},
                                     {"n_classes", std::to_string(options.n_classes())},
                                     {"depth", std::to_string(options.depth())},
                                     {"wf", std::to_string(options.wf())},
                                     {"padding", bool_text(options.padding())},
                                     {"batch_norm", bool_text(options.batch_norm())},
                                     {"up_mode", to_string(options.up_mode())}});
}

ResNetGeneratorOptions resnet_generator_options(const ModelConfig& config) {
  return ResNetGeneratorOptions()
      .input_nc(config.integer("input_nc"))
      .output_nc(config.integer("output_nc"))
      .ngf(config.integer("ngf"))
      .n_blocks(config.integer("n_blocks"));
}

LunaModelOptions luna_model_options(const ModelConfig& config) {
  return LunaModelOptions()
      .in_channels(config.integer("in_channels"))
      .conv_channels(config.integer("conv_channels"));
}

UNetWrapperOptions unet_wrapper_options(const ModelConfig& config) {
  UpMode up_mode = UpMode::upconv;
  try {
    up_mode = up_mode_from_string(config.text("up_mode"));
  } catch (const c10::Error& error) {
    throw ArchiveError(error.what_without_backtrace());
  }
  return UNetWrapperOptions()
      .in_channels(config.integer("in_channels"))
      .n_classes(config.integer("n_classes"))
      .depth(config.integer("depth"))
      .wf(config.integer("wf"))
      .padding(config.boolean("padding"))
      .batch_norm(config.boolean("batch_norm"))
      .up_mode(up_mode);
}

template <typename Model>
Model load_model(const std::string& path) {
  return model_from_archive<Model>(read_archive(path), path);
}

template <typename Model>
Model load_model(const std::string& path, const typename Model::Impl::Options& options) {
  return build_and_load<Model>(read_archive(path), path, options);
}

template ResNetGenerator load_model<ResNetGenerator>(const std::string&);
template LunaModel load_model<LunaModel>(const std::string&);
template UNetWrapper load_model<UNetWrapper>(const std::string&);
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

std::vector<std::string> output_names(const std::string& python_class) {
  if (python_class == ModelTraits<LunaModel>::python_class) return {"logits", "probabilities"};
  return {"output"};
}

AnyModel load_any_model(const std::string& path) {
  const Archive archive = read_archive(path);
  if (!archive.model_config) {
    throw ArchiveError("weights archive '" + path + "' does not say which model it holds (no " +
                       std::string(ModelConfig::kArchiveEntry) + ")");
  }
  const std::string& name = archive.model_config->model;
  if (name == ModelTraits<ResNetGenerator>::python_class) {
    auto model = model_from_archive<ResNetGenerator>(archive, path);
    return {*archive.model_config, model.ptr(),
            [model](const torch::Tensor& x) mutable { return NamedOutputs{{"output", model(x)}}; }};
  }
  if (name == ModelTraits<UNetWrapper>::python_class) {
    auto model = model_from_archive<UNetWrapper>(archive, path);
    return {*archive.model_config, model.ptr(),
            [model](const torch::Tensor& x) mutable { return NamedOutputs{{"output", model(x)}}; }};
  }
  if (name == ModelTraits<LunaModel>::python_class) {
    auto model = model_from_archive<LunaModel>(archive, path);
    return {*archive.model_config, model.ptr(), [model](const torch::Tensor& x) mutable {
              const auto out = model(x);
              return NamedOutputs{{"logits", out.logits}, {"probabilities", out.probabilities}};
            }};
  }
  throw ArchiveError("weights archive '" + path + "' holds an unknown model '" + name + "'");
}

}  // namespace dlwpt::weights
