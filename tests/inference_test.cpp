// The fast inference paths of layers/inference.h against the plain ATen ops they replace, and
// their weight caches against weights that change.

#include <torch/torch.h>

#include "dlwpt/layers/inference.h"
#include "dlwpt/models/luna_model.h"
#include "tests/test_support.h"
#include "dlwpt/weights/archive.h"
#include "dlwpt/weights/reference_case.h"

namespace dlwpt::testing {
namespace {

namespace nn = torch::nn;

// Float rounding of sums taken in another order, relative to the outputs' scale.
constexpr double kRoundingTolerance = 1e-5;

double relative_difference(const torch::Tensor& actual, const torch::Tensor& expected) {
  return (actual - expected).abs().max().item<double>() /
         std::max(1.0, expected.abs().max().item<double>());
}

struct TransposedCase {
  int64_t in_channels, out_channels, kernel, stride, padding, output_padding;
  std::vector<int64_t> input_shape;
};

class SubpixelConvTransposeTest : public ::testing::TestWithParam<TransposedCase> {};

TEST_P(SubpixelConvTransposeTest, EqualsConvTranspose2d) {
  const TransposedCase& c = GetParam();
  torch::manual_seed(3);
  nn::ConvTranspose2d layer(nn::ConvTranspose2dOptions(c.in_channels, c.out_channels, c.kernel)
                                .stride(c.stride)
                                .padding(c.padding)
                                .output_padding(c.output_padding));
  const auto input = torch::randn(c.input_shape);
  SubpixelConvTranspose2d subpixel;
  torch::NoGradGuard no_grad;
  const auto expected = layer(input);
  for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
    const auto actual = subpixel.forward(*layer, input.contiguous(format));
    ASSERT_EQ(actual.sizes(), expected.sizes());
    const double difference = relative_difference(actual, expected);
    std::cout << "k" << c.kernel << " s" << c.stride << " p" << c.padding << " op"
              << c.output_padding << " " << input.sizes() << ": relative difference "
              << difference << "\n";
    EXPECT_LE(difference, kRoundingTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, SubpixelConvTransposeTest,
    ::testing::Values(
        TransposedCase{16, 8, 3, 2, 1, 1, {1, 16, 9, 13}},  // CycleGAN's upsampling
        TransposedCase{12, 6, 2, 2, 0, 0, {2, 12, 7, 10}},  // U-Net's upconv
        TransposedCase{5, 4, 4, 2, 1, 0, {1, 5, 6, 5}},     // DCGAN-style
        TransposedCase{3, 7, 5, 3, 2, 2, {2, 3, 4, 6}},     // stride 3, output padding 2
        TransposedCase{4, 4, 1, 2, 0, 1, {1, 4, 5, 5}},     // kernel smaller than stride
        TransposedCase{6, 3, 3, 1, 1, 0, {1, 6, 8, 8}}));   // stride 1

TEST(SubpixelConvTranspose, RunsThePlainLayerWithAutogradOn) {
  nn::ConvTranspose2d layer(nn::ConvTranspose2dOptions(4, 2, 3).stride(2).padding(1));
  SubpixelConvTranspose2d subpixel;
  const auto input = torch::randn({1, 4, 5, 5});
  const auto output = subpixel.forward(*layer, input);
  EXPECT_TRUE(output.requires_grad());
  EXPECT_TRUE(torch::equal(output, layer(input)));
}

TEST(SubpixelConvTranspose, FollowsAChangedWeight) {
  nn::ConvTranspose2d layer(nn::ConvTranspose2dOptions(4, 2, 2).stride(2));
  SubpixelConvTranspose2d subpixel;
  const auto input = torch::randn({1, 4, 5, 5});
  torch::NoGradGuard no_grad;
  subpixel.forward(*layer, input);  // fills the cache
  layer->weight.mul_(2);            // in place: the version counter moves
  EXPECT_LE(relative_difference(subpixel.forward(*layer, input), layer(input)),
            kRoundingTolerance);
  layer->weight = torch::randn_like(layer->weight);  // a new tensor altogether
  layer->bias.add_(1);
  EXPECT_LE(relative_difference(subpixel.forward(*layer, input), layer(input)),
            kRoundingTolerance);
}

TEST(PackedConv3d, EqualsConv3dAndFollowsAChangedWeight) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this ATen has no oneDNN";
  torch::manual_seed(5);
  nn::Conv3d layer(nn::Conv3dOptions(3, 8, 3).padding(1));
  PackedConv3d packed;
  const auto input = torch::randn({2, 3, 6, 8, 10});
  torch::NoGradGuard no_grad;
  const auto first = packed.forward(*layer, input.to_mkldnn());
  EXPECT_TRUE(first.is_mkldnn());
  const double difference = relative_difference(first.to_dense(), layer(input));
  std::cout << "packed Conv3d: relative difference " << difference << "\n";
  EXPECT_LE(difference, kRoundingTolerance);
  layer->weight.neg_();
  EXPECT_LE(relative_difference(packed.forward(*layer, input.to_mkldnn()).to_dense(),
                                layer(input)),
            kRoundingTolerance);
}

TEST(PackedConv3d, RejectsADenseInput) {
  nn::Conv3d layer(nn::Conv3dOptions(1, 2, 3));
  PackedConv3d packed;
  torch::NoGradGuard no_grad;
  EXPECT_THAT(error_message_of<c10::Error>([&] { packed.forward(*layer, torch::randn({1, 1, 4, 4, 4})); }),
              ::testing::HasSubstr("oneDNN layout"));
}

// A model built inside InferenceMode has parameters without version counters.
TEST(InferencePath, ModelsBuiltInInferenceModeRunAlike) {
  torch::manual_seed(8);
  LunaModel reference;
  reference->eval();
  const auto chunk = torch::randn({1, 1, 32, 48, 48});
  torch::InferenceMode inference;
  LunaModel built_inside;
  built_inside->eval();
  weights::load_state_dict(*built_inside, weights::state_dict(*reference));
  const double difference = weights::max_abs_difference(built_inside(chunk).logits,
                                                         reference(chunk).logits);
  std::cout << "LunaModel built in InferenceMode: max difference " << difference << "\n";
  EXPECT_EQ(difference, 0.0);
  nn::ConvTranspose2d up(nn::ConvTranspose2dOptions(4, 2, 3).stride(2).padding(1));
  SubpixelConvTranspose2d subpixel;
  const auto input = torch::randn({1, 4, 5, 5});
  EXPECT_LE(relative_difference(subpixel.forward(*up, input), up(input)), kRoundingTolerance);
}

TEST(InferencePath, OnlyWithoutAutograd) {
  const auto input = torch::randn({1, 2});
  EXPECT_FALSE(use_inference_path(input));
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(use_inference_path(input));
    EXPECT_FALSE(use_inference_path(input.to(torch::kDouble)));
  }
  torch::InferenceMode inference;
  EXPECT_TRUE(use_inference_path(input));
}

}  // namespace
}  // namespace dlwpt::testing
