// Parameter and buffer names, shapes and dtypes of the native models against Python's
// state_dict; the book's seeded initialisation; option validation.

#include "dlwpt/layers/init.h"
#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"
#include "tests/test_support.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::testing {
namespace {

using weights::TensorMap;

// "name [shape] dtype" per tensor, so that a difference prints readably.
std::vector<std::string> describe(const TensorMap& tensors) {
  std::vector<std::string> lines;
  for (const auto& [name, tensor] : tensors) {
    std::ostringstream line;
    line << name << " " << tensor.sizes() << " " << tensor.scalar_type();
    lines.push_back(line.str());
  }
  return lines;
}

class StateDictKeys : public ::testing::TestWithParam<std::string> {};

TEST_P(StateDictKeys, NativeNamesShapesAndDtypesEqualPython) {
  const std::string path = reference_path(GetParam() + ".pt");
  const auto archive = weights::read_archive(path);
  const auto model = weights::load_any_model(path);
  const auto native = describe(weights::state_dict(*model.module));
  const auto python = describe(archive.tensors);
  std::cout << GetParam() << ": " << native.size() << " native tensors, " << python.size()
            << " in the traced Python model\n";
  EXPECT_EQ(native, python);
}

INSTANTIATE_TEST_SUITE_P(Cases, StateDictKeys,
                         ::testing::Values("cyclegan_default", "cyclegan_small", "cyclegan_ngf32",
                                           "unet_book", "unet_upsample", "unet_depth4",
                                           "unet_nopad", "luna"));

std::vector<int64_t> shape_of(const TensorMap& tensors, const std::string& name) {
  const auto found = tensors.find(name);
  return found == tensors.end() ? std::vector<int64_t>{} : found->second.sizes().vec();
}

// The names and shapes the issue and the book's checkpoints spell out.
TEST(StateDictKeys, ResNetGeneratorKeysAreTheBooks) {
  const auto tensors = weights::state_dict(*ResNetGenerator());
  EXPECT_EQ(shape_of(tensors, "model.1.weight"), (std::vector<int64_t>{64, 3, 7, 7}));
  EXPECT_EQ(shape_of(tensors, "model.4.weight"), (std::vector<int64_t>{128, 64, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "model.10.conv_block.1.weight"),
            (std::vector<int64_t>{256, 256, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "model.18.conv_block.5.bias"), (std::vector<int64_t>{256}));
  // ConvTranspose2d weights are [in, out, k, k].
  EXPECT_EQ(shape_of(tensors, "model.19.weight"), (std::vector<int64_t>{256, 128, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "model.22.weight"), (std::vector<int64_t>{128, 64, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "model.26.bias"), (std::vector<int64_t>{3}));
  // InstanceNorm2d has neither affine parameters nor running statistics.
  EXPECT_EQ(tensors.count("model.2.weight") + tensors.count("model.2.running_mean"), 0u);
  EXPECT_EQ(tensors.size(), 2u * (3 + 9 * 2 + 2 + 1));
}

TEST(StateDictKeys, LunaModelKeysAreTheBooks) {
  const auto tensors = weights::state_dict(*LunaModel());
  EXPECT_EQ(shape_of(tensors, "tail_batchnorm.running_var"), (std::vector<int64_t>{1}));
  EXPECT_EQ(tensors.at("tail_batchnorm.num_batches_tracked").scalar_type(), torch::kLong);
  EXPECT_EQ(shape_of(tensors, "block1.conv1.weight"), (std::vector<int64_t>{8, 1, 3, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "block4.conv2.weight"), (std::vector<int64_t>{64, 64, 3, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "head_linear.weight"), (std::vector<int64_t>{2, 1152}));
  EXPECT_EQ(tensors.size(), 5u + 4 * 4 + 2);
}

TEST(StateDictKeys, UNetWrapperKeysAreTheBooks) {
  const auto tensors = weights::state_dict(*UNetWrapper(book_segmentation_options()));
  EXPECT_EQ(shape_of(tensors, "input_batchnorm.weight"), (std::vector<int64_t>{7}));
  EXPECT_EQ(shape_of(tensors, "unet.down_path.0.block.0.weight"),
            (std::vector<int64_t>{16, 7, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "unet.down_path.0.block.2.running_mean"),
            (std::vector<int64_t>{16}));
  EXPECT_EQ(shape_of(tensors, "unet.down_path.2.block.3.weight"),
            (std::vector<int64_t>{64, 64, 3, 3}));
  EXPECT_EQ(shape_of(tensors, "unet.up_path.0.up.weight"), (std::vector<int64_t>{64, 32, 2, 2}));
  EXPECT_EQ(shape_of(tensors, "unet.up_path.1.conv_block.block.5.num_batches_tracked"),
            (std::vector<int64_t>{}));
  EXPECT_EQ(tensors.count("unet.up_path.1.conv_block.block.5.num_batches_tracked"), 1u);
  EXPECT_EQ(shape_of(tensors, "unet.last.weight"), (std::vector<int64_t>{1, 16, 1, 1}));

  const auto upsample =
      weights::state_dict(*UNetWrapper(book_segmentation_options().up_mode(UpMode::upsample)));
  EXPECT_EQ(shape_of(upsample, "unet.up_path.0.up.1.weight"),
            (std::vector<int64_t>{32, 64, 1, 1}));
  EXPECT_EQ(upsample.count("unet.up_path.0.up.weight"), 0u);
}

// The closed-form size of each model equals its real modules' count, over option sets that
// exercise every term (so that a layer added to a constructor without its count is caught).
int64_t counted_numel(const torch::nn::Module& module) {
  int64_t values = 0;
  for (const auto& [name, tensor] : weights::state_dict(module)) values += tensor.numel();
  return values;
}

template <typename Model>
void expect_state_numel_counts(const typename Model::Impl::Options& options) {
  const int64_t closed_form = Model::Impl::state_numel(options);
  const int64_t counted = counted_numel(*Model(options));
  const auto config = weights::to_model_config(options);
  std::cout << "  " << config.model;
  for (const auto& [key, value] : config.options) std::cout << " " << key << "=" << value;
  std::cout << ": closed form " << closed_form << " values, module " << counted << "\n";
  EXPECT_EQ(closed_form, counted);
}

TEST(StateNumel, ResNetGeneratorClosedFormEqualsTheModule) {
  expect_state_numel_counts<ResNetGenerator>(ResNetGeneratorOptions());
  expect_state_numel_counts<ResNetGenerator>(ResNetGeneratorOptions().ngf(8).n_blocks(2));
  expect_state_numel_counts<ResNetGenerator>(
      ResNetGeneratorOptions().input_nc(1).output_nc(2).ngf(5).n_blocks(0));
}

TEST(StateNumel, LunaModelClosedFormEqualsTheModule) {
  expect_state_numel_counts<LunaModel>(LunaModelOptions());
  expect_state_numel_counts<LunaModel>(LunaModelOptions().conv_channels(2));
  expect_state_numel_counts<LunaModel>(
      LunaModelOptions().in_channels(3).conv_channels(5).chunk_size({16, 32, 64}));
}

TEST(StateNumel, UNetWrapperClosedFormEqualsTheModule) {
  expect_state_numel_counts<UNetWrapper>(book_segmentation_options());
  expect_state_numel_counts<UNetWrapper>(UNetWrapperOptions());
  expect_state_numel_counts<UNetWrapper>(
      book_segmentation_options().up_mode(UpMode::upsample).n_classes(2).in_channels(3));
  expect_state_numel_counts<UNetWrapper>(
      UNetWrapperOptions().depth(1).wf(2).batch_norm(true).padding(false));
  expect_state_numel_counts<UNetWrapper>(UNetWrapperOptions().in_channels(8).depth(4).wf(3));
  // The plain UNet (no input batch norm) on its own.
  const auto options = book_segmentation_options();
  EXPECT_EQ(UNetImpl::state_numel(options), counted_numel(*UNet(options)));
}

// Python's `_init_weights` under torch.manual_seed gives bit-identical weights in C++, so
// C++ training starts exactly where Python training starts.
template <typename Model>
void expect_seeded_init_equals_python(const std::string& reference_file, Model model_factory()) {
  const auto python = weights::read_archive(reference_path(reference_file)).tensors;
  torch::manual_seed(20200126);  // tools/testing/export_reference.py INIT_SEED
  const auto native = weights::state_dict(*model_factory());
  ASSERT_EQ(describe(native), describe(python));
  double largest = 0;
  for (const auto& [name, tensor] : native) {
    EXPECT_TRUE(torch::equal(tensor, python.at(name))) << name << " differs from Python's init";
    largest = std::max(largest, (tensor.to(torch::kDouble) - python.at(name).to(torch::kDouble))
                                    .abs()
                                    .max()
                                    .template item<double>());
  }
  std::cout << reference_file << ": max |native init - Python init| = " << largest << "\n";
}

TEST(BookInitialisation, LunaModelEqualsPythonSeededInit) {
  expect_seeded_init_equals_python<LunaModel>("init_LunaModel.pt", [] { return LunaModel(); });
}

TEST(BookInitialisation, UNetWrapperEqualsPythonSeededInit) {
  expect_seeded_init_equals_python<UNetWrapper>(
      "init_UNetWrapper.pt", [] { return UNetWrapper(book_segmentation_options()); });
}

TEST(BookInitialisation, BiasesFollowTheBooksNormalCall) {
  // normal_(bias, mean=-bound, std=bound) with bound = 1/sqrt(fan_out): over many draws the
  // mean is clearly negative, which a uniform(-bound, bound) default would not give.
  torch::manual_seed(7);
  torch::nn::Linear linear(4096, 4096);
  torch::nn::Module holder;
  holder.register_module("linear", linear);
  init_weights_as_book(holder);
  const double bound = 1.0 / std::sqrt(4096.0);
  const double mean = linear->bias.mean().item<double>();
  const double std = linear->bias.std().item<double>();
  std::cout << "bias mean " << mean << " (expected " << -bound << "), std " << std << "\n";
  EXPECT_NEAR(mean, -bound, 0.1 * bound);
  EXPECT_NEAR(std, bound, 0.1 * bound);
  const double weight_std = linear->weight.std().item<double>();
  EXPECT_NEAR(weight_std, std::sqrt(2.0 / 4096.0), 0.01 * std::sqrt(2.0 / 4096.0));
}

TEST(ModelOptions, InvalidOptionsAreRejectedWithAMessage) {
  auto message_of = [](auto make) {
    try {
      make();
    } catch (const c10::Error& error) {
      return std::string(error.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message_of([] { ResNetGenerator(ResNetGeneratorOptions().ngf(0)); }),
              ::testing::HasSubstr("ngf must be positive"));
  EXPECT_THAT(message_of([] { ResNetGenerator(ResNetGeneratorOptions().n_blocks(-1)); }),
              ::testing::HasSubstr("n_blocks must be >= 0"));
  EXPECT_THAT(message_of([] { UNetWrapper(UNetWrapperOptions().depth(0)); }),
              ::testing::HasSubstr("depth must be at least 1"));
  EXPECT_THAT(message_of([] { LunaModel(LunaModelOptions().chunk_size({30, 48, 48})); }),
              ::testing::HasSubstr("multiple of 16"));
  EXPECT_THAT(message_of([] { up_mode_from_string("nearest"); }),
              ::testing::HasSubstr("unknown U-Net up_mode 'nearest'"));
  EXPECT_THAT(message_of([] { LunaModel()->forward(torch::zeros({1, 1, 32, 32, 32})); }),
              ::testing::HasSubstr("built for [32, 48, 48] chunks"));
  EXPECT_THAT(message_of([] { ResNetGenerator()->forward(torch::zeros({1, 1, 32, 32})); }),
              ::testing::HasSubstr("expects an N x 3 x H x W input"));
}

}  // namespace
}  // namespace dlwpt::testing
