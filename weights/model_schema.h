#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"
#include "dlwpt/weights/archive.h"

namespace dlwpt::weights {

/// One constructor option of a model, described once: its name (the Python constructor's
/// keyword argument), how it is written to and read from an archive's configuration
/// (`dlwpt_model.cfg`), and the bounds within which a model of it can be built. The archive
/// loader, `save_model`, the checkpoints and the round-trip tests all go through these
/// descriptions, and tools/reference_models.py takes the same keywords with the same text
/// forms (integers in decimal, booleans `true`/`false`, lists comma-separated).
template <typename Options>
struct ModelOption {
  std::string name;
  /// The value as its configuration text.
  std::function<std::string(const Options&)> write;
  /// Sets the option from the configuration's text; ArchiveError when it is malformed.
  std::function<void(const ModelConfig&, Options&)> read;
  /// ConfigError unless the value is within the bounds of a loadable model.
  std::function<void(const Options&)> check;
  /// Options written before this one existed lack it: it then keeps its default.
  bool required = true;
  /// A valid value other than the default, on options of `small_options()`: for the
  /// round-trip tests, which must cover every option.
  std::function<void(Options&)> set_alternative;
};

/// The options of each model, in the order of the Python constructor's arguments.
template <typename Options>
const std::vector<ModelOption<Options>>& model_schema();

/// The Python class an options type belongs to: "ResNetGenerator", "LunaModel", "UNetWrapper".
template <typename Options>
const char* python_class();

/// Small but complete options of each model (few channels), on which every option's
/// alternative value gives a model that builds quickly: for tests and examples.
template <typename Options>
Options small_options();

}  // namespace dlwpt::weights
