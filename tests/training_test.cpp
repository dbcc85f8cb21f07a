// Training parity with PyTorch: from the same weights and the same batches, five steps of the
// book's recipes (tools/testing/training_reference.py) give the same losses, weights and BatchNorm
// statistics in C++; plus the losses and model surgery on their own.

#include <torch/torch.h>

#include "dlwpt/models/luna_model.h"
#include "dlwpt/models/unet.h"
#include "tests/test_support.h"
#include "dlwpt/training/augmentation.h"
#include "dlwpt/training/losses.h"
#include "dlwpt/training/optimizer.h"
#include "dlwpt/training/surgery.h"
#include "dlwpt/weights/model_archive.h"

namespace dlwpt::testing {
namespace {

using training::OptimizerOptions;

// The bar: 1e-5 relative to each tensor's scale.
constexpr double kTrainingTolerance = 1e-5;
constexpr int kSteps = 5;

double relative_difference(const torch::Tensor& actual, const torch::Tensor& expected) {
  const auto a = actual.to(torch::kDouble);
  const auto e = expected.to(torch::kDouble);
  return (a - e).abs().max().item<double>() / std::max(1.0, e.abs().max().item<double>());
}

struct TrainingCase {
  const char* name;
  const char* model;
  OptimizerOptions optimizer;
  int64_t finetune_depth;  // 0: train everything
};

void PrintTo(const TrainingCase& c, std::ostream* out) { *out << c.name; }

const TrainingCase kTrainingCases[] = {
    {"train_luna_sgd", "LunaModel", training::book_classification_optimizer().weight_decay(1e-4), 0},
    {"train_unet_adam", "UNetWrapper", training::book_segmentation_optimizer(), 0},
    {"train_luna_finetune", "LunaModel", training::book_finetuning_optimizer(), 2},
};

torch::Tensor loss_of(LunaModel& model, const torch::Tensor& input, const torch::Tensor& label) {
  return training::classification_loss(model(input).logits, label);
}

torch::Tensor loss_of(UNetWrapper& model, const torch::Tensor& input, const torch::Tensor& label) {
  return training::segmentation_loss(model(input), label);
}

// Runs the case's steps in C++ and compares every step's loss and the final state with
// Python's.
template <typename Model>
void check_training_case(const TrainingCase& c) {
  const auto io = weights::read_archive(reference_path(std::string(c.name) + ".io.pt")).tensors;
  auto model = weights::load_model<Model>(reference_path(std::string(c.name) + ".init.pt"));
  if (c.finetune_depth > 0) {
    const auto pretrained =
        weights::read_archive(reference_path(std::string(c.name) + ".pretrained.pt")).tensors;
    training::load_except_blocks(*model, pretrained, {training::parameter_blocks(*model).back()});
    training::freeze_all_but_last_blocks(*model, c.finetune_depth);
  }
  weights::TensorMap frozen_at_start;
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad()) frozen_at_start[item.key()] = item.value().detach().clone();
  }
  model->train();
  auto optimizer = training::make_optimizer(model->parameters(), c.optimizer);

  std::cout << c.name << "\n";
  for (int step = 0; step < kSteps; ++step) {
    const auto index = std::to_string(step);
    optimizer->zero_grad();
    torch::Tensor loss = loss_of(model, io.at("input_" + index), io.at("label_" + index));
    loss.backward();
    optimizer->step();
    const double difference = relative_difference(loss.detach(), io.at("loss_" + index).squeeze());
    std::cout << "  step " << step << ": loss " << loss.item<double>()
              << ", relative difference to PyTorch " << difference << "\n";
    EXPECT_LE(difference, kTrainingTolerance) << "loss of step " << step;
  }

  double worst = 0;
  std::string worst_key;
  for (const auto& [key, value] : weights::state_dict(*model)) {
    const auto& expected = io.at("final." + key);
    ASSERT_EQ(value.sizes(), expected.sizes()) << key;
    const double difference = relative_difference(value, expected);
    if (difference >= worst) std::tie(worst, worst_key) = std::tie(difference, key);
    EXPECT_LE(difference, kTrainingTolerance) << key << " after " << kSteps << " steps";
  }
  std::cout << "  final weights and statistics: largest relative difference " << worst << " ("
            << worst_key << ")\n";
  const auto parameters = model->named_parameters();
  for (const auto& [key, start] : frozen_at_start) {
    EXPECT_TRUE(torch::equal(parameters[key], start)) << "frozen " << key << " changed";
  }
  if (c.finetune_depth > 0) {
    EXPECT_FALSE(frozen_at_start.empty());
    std::cout << "  " << frozen_at_start.size() << " frozen parameters bit-identical to the start\n";
  }
}

class TrainingParity : public ::testing::TestWithParam<TrainingCase> {};

TEST_P(TrainingParity, FiveStepsEqualPyTorch) {
  const TrainingCase& c = GetParam();
  if (std::string(c.model) == "LunaModel") {
    check_training_case<LunaModel>(c);
  } else {
    check_training_case<UNetWrapper>(c);
  }
}

INSTANTIATE_TEST_SUITE_P(Recipes, TrainingParity, ::testing::ValuesIn(kTrainingCases),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- augmentation

TEST(Augmentation, FixedTransformsEqualPyTorchsAffineGridAndGridSample) {
  const auto io = weights::read_archive(reference_path("augmentation.io.pt")).tensors;
  for (const std::string name : {"chunk", "slices"}) {
    const auto output = training::resample(io.at(name + "_input"), io.at(name + "_transform"));
    const double difference = relative_difference(output, io.at(name + "_output"));
    std::cout << name << " " << io.at(name + "_input").sizes()
              << ": relative difference to PyTorch " << difference << "\n";
    EXPECT_LE(difference, kTrainingTolerance);
  }
}

TEST(Augmentation, TheIdentityKeepsTheChunkAndASeedRepeatsARun) {
  const auto chunk = torch::randn({1, 1, 8, 12, 12});
  EXPECT_TRUE(torch::allclose(training::resample(chunk, torch::eye(4)), chunk, 1e-5, 1e-5));
  std::mt19937_64 first(7), second(7);
  const auto options = training::book_chunk_augmentation();
  const auto a = training::augment(chunk, {}, options, first).input;
  const auto b = training::augment(chunk, {}, options, second).input;
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, chunk));
  // The noise is the book's 25 HU: what is left after removing a noiseless resampling.
  std::mt19937_64 third(7);
  const auto transform = training::random_transform(3, options, third);
  const double noise = (a - training::resample(chunk, transform)).std().item<double>();
  std::cout << "noise standard deviation " << noise << " HU\n";
  EXPECT_NEAR(noise, 25.0, 2.5);
}

TEST(Augmentation, LabelsStayMasksAndBadShapesAreNamed) {
  auto label = torch::zeros({1, 1, 16, 16});
  label.narrow(2, 4, 8).narrow(3, 4, 8).fill_(1);
  std::mt19937_64 random(3);
  const auto augmented =
      training::augment(torch::zeros({1, 7, 16, 16}), label, training::book_slice_augmentation(), random);
  EXPECT_EQ(augmented.label.scalar_type(), torch::kBool);
  EXPECT_GT(augmented.label.sum().item<int64_t>(), 0);
  EXPECT_THAT(error_message_of<c10::Error>([] {
                training::resample(torch::zeros({1, 1, 4, 4}), torch::eye(4));
              }),
              ::testing::HasSubstr("transform"));
}

// ---------------------------------------------------------------- losses

TEST(DiceLoss, MatchesTheFormulaAndItsLimits) {
  const auto label = torch::tensor({1.f, 1.f, 0.f, 0.f}).reshape({1, 1, 2, 2});
  // Perfect prediction: (2 * 2 + 1) / (2 + 2 + 1) = 1, loss 0.
  EXPECT_NEAR(training::dice_loss(label, label).item<double>(), 0.0, 1e-7);
  // Nothing predicted: 1 - 1 / (0 + 2 + 1).
  EXPECT_NEAR(training::dice_loss(torch::zeros_like(label), label).item<double>(), 2.0 / 3.0, 1e-7);
  const auto half = torch::full_like(label, 0.5);  // 1 - (2 * 1 + 1) / (2 + 2 + 1)
  EXPECT_NEAR(training::dice_loss(half, label).item<double>(), 0.4, 1e-7);
}

TEST(SegmentationLoss, AddsEightTimesTheFalseNegativeTerm) {
  const auto label = torch::tensor({1.f, 0.f, 0.f, 0.f}).reshape({1, 1, 2, 2});
  const auto prediction = torch::tensor({0.f, 1.f, 1.f, 1.f}).reshape({1, 1, 2, 2});
  // Dice: 1 - 1 / (3 + 1 + 1) = 0.8; masked prediction is all zero: 1 - 1 / (0 + 1 + 1) = 0.5.
  EXPECT_NEAR(training::segmentation_loss(prediction, label).item<double>(), 0.8 + 8 * 0.5, 1e-6);
}

TEST(Losses, RejectMismatchedShapes) {
  EXPECT_THAT(error_message_of<c10::Error>([] {
                training::dice_loss(torch::zeros({1, 1, 4, 4}), torch::zeros({1, 1, 4, 5}));
              }),
              ::testing::HasSubstr("one shape"));
  EXPECT_THAT(error_message_of<c10::Error>([] {
                training::classification_loss(torch::zeros({3, 2}), torch::zeros({2}, torch::kLong));
              }),
              ::testing::HasSubstr("N labels"));
}

// ---------------------------------------------------------------- surgery

TEST(Surgery, NamesTheBooksFineTuningBlocks) {
  LunaModel model;
  EXPECT_THAT(training::parameter_blocks(*model),
              ::testing::ElementsAre("tail_batchnorm", "block1", "block2", "block3", "block4",
                                     "head_linear"));
  EXPECT_THAT(training::freeze_all_but_last_blocks(*model, 2),
              ::testing::ElementsAre("block4", "head_linear"));
  for (const auto& item : model->named_parameters()) {
    const bool trained = item.key().rfind("block4.", 0) == 0 || item.key().rfind("head_linear.", 0) == 0;
    EXPECT_EQ(item.value().requires_grad(), trained) << item.key();
  }
  EXPECT_EQ(training::trainable_parameters(*model).size(), 6u);  // 2 convs + linear, w and b
}

TEST(Surgery, FreezesAndUnfreezesByPrefix) {
  LunaModel model;
  EXPECT_EQ(training::set_trainable(*model, "block1", false), 4);
  EXPECT_EQ(training::set_trainable(*model, "block1.conv1.weight", true), 1);
  EXPECT_TRUE(model->block1->conv1->weight.requires_grad());
  EXPECT_FALSE(model->block1->conv2->weight.requires_grad());
  // "block1" must not catch "block10"-like names, and a misspelt prefix is an error.
  EXPECT_THAT(error_message_of<c10::Error>([&] { training::set_trainable(*model, "block", false); }),
              ::testing::HasSubstr("no parameter of the model is named 'block'"));
  EXPECT_THAT(error_message_of<c10::Error>([&] { training::freeze_all_but_last_blocks(*model, 7); }),
              ::testing::HasSubstr("fine-tuning depth must be 1 .. 6"));
}

TEST(Surgery, LoadsAllButTheKeptBlocks) {
  torch::manual_seed(1);
  LunaModel source;
  LunaModel target;
  const auto head_before = target->head_linear->weight.clone();
  training::load_except_blocks(*target, weights::state_dict(*source), {"head_linear"});
  EXPECT_TRUE(torch::equal(target->block2->conv1->weight, source->block2->conv1->weight));
  EXPECT_TRUE(torch::equal(target->head_linear->weight, head_before));
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                training::load_except_blocks(*target, weights::state_dict(*source), {"head"});
              }),
              ::testing::HasSubstr("no block 'head'"));
}

TEST(Surgery, ReplacesABlockSeenByForward) {
  LunaModel model;
  training::replace_block(*model, "head_linear", model->head_linear,
                          torch::nn::Linear(model->head_linear->options.in_features(), 4));
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model(torch::zeros({1, 1, 32, 48, 48})).logits.size(1), 4);
  EXPECT_EQ(weights::state_dict(*model).at("head_linear.weight").size(0), 4);
  EXPECT_THAT(error_message_of<c10::Error>([&] {
                training::replace_block(*model, "block4", model->head_linear,
                                        torch::nn::Linear(1152, 2));
              }),
              ::testing::HasSubstr("not the module held by the member"));
}

}  // namespace
}  // namespace dlwpt::testing
