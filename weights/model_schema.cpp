#include "dlwpt/weights/model_schema.h"

#include <sstream>

namespace dlwpt::weights {

namespace {

// Options read from a file are untrusted: beyond their bounds no model fits in memory, nor its
// size in int64_t (the bounds are far above the book's models).
void check_range(const char* model, const std::string& name, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    throw ConfigError("option '" + name + "' of the " + model + " configuration is " +
                      std::to_string(value) + "; it must be " + std::to_string(min) + " to " +
                      std::to_string(max));
  }
}

// Each option kind is written, read and checked through one accessor to the options field
// (TORCH_ARG's non-const getter returns a reference).
template <typename Options, typename T>
using Field = T& (*)(Options&);

template <typename Options, typename T>
T value_of(const Options& options, Field<Options, T> field) {
  Options copy = options;
  return field(copy);
}

template <typename Options>
ModelOption<Options> integer_option(const char* name, Field<Options, int64_t> field, int64_t min,
                                    int64_t max, int64_t alternative) {
  ModelOption<Options> option;
  option.name = name;
  option.write = [=](const Options& o) { return std::to_string(value_of(o, field)); };
  option.read = [=](const ModelConfig& config, Options& o) { field(o) = config.integer(name); };
  option.check = [=](const Options& o) {
    check_range(python_class<Options>(), name, value_of(o, field), min, max);
  };
  option.set_alternative = [=](Options& o) { field(o) = alternative; };
  return option;
}

template <typename Options>
ModelOption<Options> boolean_option(const char* name, Field<Options, bool> field) {
  ModelOption<Options> option;
  option.name = name;
  option.write = [=](const Options& o) { return value_of(o, field) ? "true" : "false"; };
  option.read = [=](const ModelConfig& config, Options& o) { field(o) = config.boolean(name); };
  option.check = [](const Options&) {};
  option.set_alternative = [=](Options& o) { field(o) = !field(o); };
  return option;
}

ModelOption<UNetWrapperOptions> up_mode_option() {
  ModelOption<UNetWrapperOptions> option;
  option.name = "up_mode";
  option.write = [](const UNetWrapperOptions& o) { return to_string(o.up_mode()); };
  option.read = [](const ModelConfig& config, UNetWrapperOptions& o) {
    const std::string& text = config.text("up_mode");
    if (text != to_string(UpMode::upconv) && text != to_string(UpMode::upsample)) {
      throw ArchiveError("option 'up_mode' of the UNetWrapper configuration is '" + text +
                         "', not upconv or upsample");
    }
    o.up_mode(up_mode_from_string(text));
  };
  option.check = [](const UNetWrapperOptions&) {};
  option.set_alternative = [](UNetWrapperOptions& o) {
    o.up_mode(o.up_mode() == UpMode::upconv ? UpMode::upsample : UpMode::upconv);
  };
  return option;
}

// Index, row, column sides, comma-separated ("32,48,48"). Archives written before the option
// existed hold the book's 32 x 48 x 48 model.
ModelOption<LunaModelOptions> chunk_size_option() {
  constexpr const char* kName = "chunk_size";
  ModelOption<LunaModelOptions> option;
  option.name = kName;
  option.required = false;
  option.write = [](const LunaModelOptions& o) {
    const auto& size = o.chunk_size();
    return std::to_string(size[0]) + "," + std::to_string(size[1]) + "," + std::to_string(size[2]);
  };
  option.read = [](const ModelConfig& config, LunaModelOptions& o) {
    const std::string& text = config.text(kName);
    ChunkSize size{};
    std::istringstream in(text);
    char comma1 = 0, comma2 = 0;
    in >> size[0] >> comma1 >> size[1] >> comma2 >> size[2];
    if (!in || comma1 != ',' || comma2 != ',' || in.peek() != std::char_traits<char>::eof()) {
      throw ArchiveError("option 'chunk_size' of the LunaModel configuration is '" + text +
                         "', not three comma-separated integers");
    }
    o.chunk_size(size);
  };
  option.check = [](const LunaModelOptions& o) {
    for (int64_t side : o.chunk_size()) check_range("LunaModel", kName, side, 16, 1024);
  };
  option.set_alternative = [](LunaModelOptions& o) { o.chunk_size({16, 32, 64}); };
  return option;
}

}  // namespace

template <>
const char* python_class<ResNetGeneratorOptions>() { return "ResNetGenerator"; }
template <>
const char* python_class<LunaModelOptions>() { return "LunaModel"; }
template <>
const char* python_class<UNetWrapperOptions>() { return "UNetWrapper"; }

template <>
const std::vector<ModelOption<ResNetGeneratorOptions>>& model_schema() {
  using O = ResNetGeneratorOptions;
  static const std::vector<ModelOption<O>> schema = {
      integer_option<O>("input_nc", [](O& o) -> int64_t& { return o.input_nc(); }, 1, 64, 1),
      integer_option<O>("output_nc", [](O& o) -> int64_t& { return o.output_nc(); }, 1, 64, 2),
      integer_option<O>("ngf", [](O& o) -> int64_t& { return o.ngf(); }, 1, 1024, 6),
      integer_option<O>("n_blocks", [](O& o) -> int64_t& { return o.n_blocks(); }, 0, 64, 0),
  };
  return schema;
}

template <>
const std::vector<ModelOption<LunaModelOptions>>& model_schema() {
  using O = LunaModelOptions;
  static const std::vector<ModelOption<O>> schema = {
      integer_option<O>("in_channels", [](O& o) -> int64_t& { return o.in_channels(); }, 1, 64, 2),
      integer_option<O>("conv_channels", [](O& o) -> int64_t& { return o.conv_channels(); }, 1, 1024, 3),
      chunk_size_option(),
  };
  return schema;
}

template <>
const std::vector<ModelOption<UNetWrapperOptions>>& model_schema() {
  using O = UNetWrapperOptions;
  static const std::vector<ModelOption<O>> schema = {
      integer_option<O>("in_channels", [](O& o) -> int64_t& { return o.in_channels(); }, 1, 256, 3),
      integer_option<O>("n_classes", [](O& o) -> int64_t& { return o.n_classes(); }, 1, 256, 3),
      integer_option<O>("depth", [](O& o) -> int64_t& { return o.depth(); }, 1, 10, 2),
      integer_option<O>("wf", [](O& o) -> int64_t& { return o.wf(); }, 0, 12, 1),
      boolean_option<O>("padding", [](O& o) -> bool& { return o.padding(); }),
      boolean_option<O>("batch_norm", [](O& o) -> bool& { return o.batch_norm(); }),
      up_mode_option(),
  };
  return schema;
}

template <>
ResNetGeneratorOptions small_options() {
  return ResNetGeneratorOptions().ngf(4).n_blocks(1);
}

template <>
LunaModelOptions small_options() {
  return LunaModelOptions().conv_channels(2);
}

template <>
UNetWrapperOptions small_options() {
  return UNetWrapperOptions().depth(3).wf(2);
}

}  // namespace dlwpt::weights
