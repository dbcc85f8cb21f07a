// The model schema (weights/model_schema.h): every option of every model, set to a value other
// than its default, survives an archive round trip, C++ to C++ and C++ to Python.

#include <algorithm>

#include <torch/torch.h>

#include "dlwpt/layers/inference.h"
#include "dlwpt/weights/model_archive.h"
#include "dlwpt/weights/model_schema.h"
#include "tests/test_support.h"

namespace dlwpt::testing {
namespace {

template <typename Options>
struct Variant {
  std::string name;  // "small", or the option set to its alternative value
  Options options;
};

// The small options, then each option of the schema set to its alternative on them.
template <typename Options>
std::vector<Variant<Options>> option_variants() {
  std::vector<Variant<Options>> variants{{"small", weights::small_options<Options>()}};
  for (const auto& option : weights::model_schema<Options>()) {
    auto options = weights::small_options<Options>();
    option.set_alternative(options);
    variants.push_back({option.name, options});
  }
  return variants;
}

// A batch of one the model takes: an image, a CT chunk or a stack of slices.
torch::Tensor example_input(const ResNetGeneratorOptions& options) {
  return torch::rand({1, options.input_nc(), 32, 32});
}
torch::Tensor example_input(const LunaModelOptions& options) {
  const auto& chunk = options.chunk_size();
  return torch::randn({1, options.in_channels(), chunk[0], chunk[1], chunk[2]});
}
torch::Tensor example_input(const UNetWrapperOptions& options) {
  return torch::randn({1, options.in_channels(), 64, 64});  // large enough for an unpadded U-Net
}

template <typename Model>
Model seeded_model(const typename Model::Impl::Options& options) {
  torch::manual_seed(7);
  Model model(options);
  model->eval();
  return model;
}

void expect_same_tensors(const weights::TensorMap& actual, const weights::TensorMap& expected,
                         const std::string& prefix, const std::string& variant) {
  const auto with_prefix = std::count_if(actual.begin(), actual.end(), [&](const auto& entry) {
    return entry.first.rfind(prefix, 0) == 0;
  });
  ASSERT_EQ(static_cast<size_t>(with_prefix), expected.size()) << variant;
  for (const auto& [name, tensor] : expected) {
    const auto found = actual.find(prefix + name);
    ASSERT_NE(found, actual.end()) << variant << ": " << prefix + name;
    EXPECT_TRUE(torch::equal(found->second, tensor)) << variant << ": " << name;
  }
}

template <typename Model>
void expect_cpp_round_trip() {
  using Options = typename Model::Impl::Options;
  TemporaryFolder folder;
  const auto small_config = weights::to_model_config(weights::small_options<Options>());
  for (const auto& variant : option_variants<Options>()) {
    const auto config = weights::to_model_config(variant.options);
    std::cout << "  " << config.model << " " << variant.name << ": " << config.to_text().size()
              << "-byte configuration\n";
    // The alternative really changes its option, and only it.
    for (const auto& [key, value] : config.options) {
      EXPECT_EQ(value == small_config.options.at(key), key != variant.name) << variant.name << " " << key;
    }
    const Model model = seeded_model<Model>(variant.options);
    const std::string path = folder.path(variant.name + ".pt");
    weights::save_model(model, path);
    const Model loaded = weights::load_model<Model>(path);
    EXPECT_EQ(weights::to_model_config(loaded->options).to_text(), config.to_text()) << variant.name;
    expect_same_tensors(weights::state_dict(*loaded), weights::state_dict(*model), "", variant.name);
  }
}

TEST(ModelSchema, EveryGeneratorOptionRoundTripsInCpp) { expect_cpp_round_trip<ResNetGenerator>(); }
TEST(ModelSchema, EveryLunaModelOptionRoundTripsInCpp) { expect_cpp_round_trip<LunaModel>(); }
TEST(ModelSchema, EveryUNetWrapperOptionRoundTripsInCpp) { expect_cpp_round_trip<UNetWrapper>(); }

TEST(ModelSchema, UnknownAndMalformedOptionsAreArchiveErrors) {
  auto config = weights::to_model_config(LunaModelOptions());
  config.options["conv_chanels"] = "8";
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] { weights::luna_model_options(config); }),
              ::testing::HasSubstr("unknown option 'conv_chanels'"));
  config = weights::to_model_config(LunaModelOptions());
  config.options["chunk_size"] = "32,48";
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] { weights::luna_model_options(config); }),
              ::testing::HasSubstr("'32,48', not three comma-separated integers"));
  // Archives written before chunk_size existed hold the book's model.
  config.options.erase("chunk_size");
  EXPECT_EQ(weights::luna_model_options(config).chunk_size(), (ChunkSize{32, 48, 48}));
  config = weights::to_model_config(UNetWrapperOptions());
  config.options["padding"] = "yes";
  EXPECT_THAT(error_message_of<weights::ArchiveError>([&] { weights::unet_wrapper_options(config); }),
              ::testing::HasSubstr("'yes', not true or false"));
}

// load_model(path, device) places every parameter and buffer on the device, and device_of
// tells the pipelines where to send their inputs. This machine has only the CPU (libtorch
// 1.13 cannot move modules to the meta device): a device it lacks is a ConfigError.
TEST(ModelDevice, LoadModelPlacesTheModelOrNamesTheMissingDevice) {
  TemporaryFolder folder;
  const std::string path = folder.path("luna.pt");
  weights::save_model(seeded_model<LunaModel>(weights::small_options<LunaModelOptions>()), path);
  const auto on_cpu = weights::load_model<LunaModel>(path, torch::kCPU);
  EXPECT_EQ(device_of(*on_cpu), torch::Device(torch::kCPU));
  EXPECT_EQ(device_of(torch::nn::Module()), torch::Device(torch::kCPU));
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_THAT(error_message_of<ConfigError>([&] { weights::load_model<LunaModel>(path, torch::kCUDA); }),
              ::testing::HasSubstr("cannot place the model of '" + path + "' on device cuda"));
}

// Python builds the reference model from the same configuration, loads the C++ weights
// strictly and runs them: equal weights, outputs within the parity tolerance.
template <typename Model>
void expect_python_loads_every_option() {
  using Options = typename Model::Impl::Options;
  TemporaryFolder folder;
  for (const auto& variant : option_variants<Options>()) {
    const Model model = seeded_model<Model>(variant.options);
    const std::string path = folder.path(variant.name + ".pt");
    weights::save_model(model, path);
    const auto input = example_input(variant.options);
    const auto python = run_python_reference(path, {input});
    expect_same_tensors(python, weights::state_dict(*model), "loaded_state.", variant.name);

    const auto any = weights::load_any_model(path);
    torch::NoGradGuard no_grad;
    for (const auto& [name, output] : any.forward(input)) {
      const auto measured = closeness(output, python.at(name + "_0"),
                                      parity_tolerance(any.config.model, name));
      std::cout << "  " << any.config.model << " " << variant.name << " " << name << ": "
                << measured << "\n";
      EXPECT_TRUE(measured.within) << variant.name << " " << name;
    }
  }
}

TEST(ModelSchemaPython, EveryGeneratorOptionLoadsInPython) {
  expect_python_loads_every_option<ResNetGenerator>();
}
TEST(ModelSchemaPython, EveryLunaModelOptionLoadsInPython) {
  expect_python_loads_every_option<LunaModel>();
}
TEST(ModelSchemaPython, EveryUNetWrapperOptionLoadsInPython) {
  expect_python_loads_every_option<UNetWrapper>();
}

}  // namespace
}  // namespace dlwpt::testing
