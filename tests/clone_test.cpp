// clone() (torch::nn::Cloneable): a deep copy of every model, equal in state and output,
// sharing no storage with the original, so that a second worker, an EMA or a before/after
// comparison can start from one model.

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/resnet_generator.h"
#include "dlwpt/models/unet.h"
#include "dlwpt/weights/model_archive.h"
#include "tests/test_support.h"

namespace dlwpt::testing {
namespace {

torch::Tensor output_of(ResNetGenerator& model, const torch::Tensor& input) { return model(input); }
torch::Tensor output_of(UNetWrapper& model, const torch::Tensor& input) { return model(input); }
torch::Tensor output_of(LunaModel& model, const torch::Tensor& input) { return model(input).logits; }

template <typename Model>
Model clone_of(const Model& model) {
  auto copy = std::dynamic_pointer_cast<typename Model::Impl>(model->clone());
  EXPECT_NE(copy, nullptr) << "clone() returned another module type";
  return Model(copy);
}

// The clone holds equal values in storage of its own, computes the same output in training
// and in inference, and changing it leaves the original as it was.
template <typename Model>
void expect_deep_copy(Model model, const torch::Tensor& input) {
  model->eval();
  Model copy = clone_of(model);
  EXPECT_FALSE(copy->is_training()) << "the clone keeps eval mode";

  const auto original_state = weights::state_dict(*model);
  const auto copied_state = weights::state_dict(*copy);
  ASSERT_EQ(original_state.size(), copied_state.size());
  for (const auto& [key, value] : original_state) {
    ASSERT_TRUE(copied_state.count(key)) << key << " missing from the clone";
    const auto& copied = copied_state.at(key);
    EXPECT_TRUE(torch::equal(copied, value)) << key;
    EXPECT_NE(copied.data_ptr(), value.data_ptr()) << key << " shares storage with the original";
  }

  torch::InferenceMode inference;
  const torch::Tensor expected = output_of(model, input);
  const torch::Tensor actual = output_of(copy, input);
  const double difference = (actual - expected).abs().max().item<double>();
  std::cout << "clone vs original: max |a-b| " << difference << " over " << expected.numel()
            << " outputs\n";
  EXPECT_EQ(difference, 0.0);

  for (auto& parameter : copy->parameters()) parameter.add_(1.0);
  const auto after = output_of(model, input);
  EXPECT_TRUE(torch::equal(after, expected)) << "changing the clone changed the original";
  EXPECT_FALSE(torch::equal(output_of(copy, input), expected)) << "the clone did not change";
}

TEST(Clone, ResNetGeneratorIsADeepCopy) {
  torch::manual_seed(0);
  expect_deep_copy(ResNetGenerator(ResNetGeneratorOptions().ngf(8).n_blocks(2)),
                   torch::rand({1, 3, 32, 40}));
}

TEST(Clone, UNetWrapperIsADeepCopy) {
  torch::manual_seed(0);
  for (const UpMode mode : {UpMode::upconv, UpMode::upsample}) {
    expect_deep_copy(UNetWrapper(UNetWrapperOptions()
                                     .in_channels(3)
                                     .n_classes(2)
                                     .depth(3)
                                     .wf(2)
                                     .padding(true)
                                     .batch_norm(true)
                                     .up_mode(mode)),
                     torch::randn({2, 3, 32, 32}));
  }
}

TEST(Clone, LunaModelIsADeepCopy) {
  torch::manual_seed(0);
  expect_deep_copy(LunaModel(LunaModelOptions().conv_channels(2).chunk_size({16, 16, 32})),
                   torch::randn({2, 1, 16, 16, 32}));
}

}  // namespace
}  // namespace dlwpt::testing
