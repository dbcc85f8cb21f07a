#include "dlwpt/training/surgery.h"

#include <algorithm>

namespace dlwpt::training {

namespace {

// "block4.conv1.weight" -> "block4".
std::string top_level_name(const std::string& key) { return key.substr(0, key.find('.')); }

bool has_prefix(const std::string& key, const std::string& prefix) {
  return key == prefix || (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
                           key[prefix.size()] == '.');
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::vector<std::string> parameter_names(const torch::nn::Module& model) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters()) names.push_back(item.key());
  return names;
}

std::vector<std::string> parameter_blocks(const torch::nn::Module& model) {
  std::vector<std::string> blocks;
  for (const auto& child : model.named_children()) {
    if (!child.value()->parameters().empty()) blocks.push_back(child.key());
  }
  return blocks;
}

int64_t set_trainable(torch::nn::Module& model, const std::string& prefix, bool trainable) {
  int64_t count = 0;
  for (auto& item : model.named_parameters()) {
    if (!has_prefix(item.key(), prefix)) continue;
    item.value().set_requires_grad(trainable);
    ++count;
  }
  TORCH_CHECK(count > 0, "no parameter of the model is named '", prefix, "' or starts with '",
              prefix, ".'");
  return count;
}

std::vector<std::string> freeze_all_but_last_blocks(torch::nn::Module& model, int64_t depth) {
  const auto blocks = parameter_blocks(model);
  TORCH_CHECK(depth >= 1 && depth <= static_cast<int64_t>(blocks.size()),
              "fine-tuning depth must be 1 .. ", blocks.size(),
              " (the blocks with parameters), got ", depth);
  const std::vector<std::string> trained(blocks.end() - depth, blocks.end());
  for (auto& item : model.named_parameters()) {
    item.value().set_requires_grad(contains(trained, top_level_name(item.key())));
  }
  return trained;
}

std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model) {
  std::vector<torch::Tensor> trainable;
  for (const auto& parameter : model.parameters()) {
    if (parameter.requires_grad()) trainable.push_back(parameter);
  }
  return trainable;
}

weights::LoadReport load_except_blocks(torch::nn::Module& model, const weights::TensorMap& tensors,
                                       const std::vector<std::string>& kept_blocks) {
  const auto blocks = parameter_blocks(model);
  for (const auto& kept : kept_blocks) {
    TORCH_CHECK(contains(blocks, kept), "the model has no block '", kept, "' with parameters");
  }
  // Strict about everything else: the kept blocks' own tensors go in as the model has them.
  weights::TensorMap merged;
  for (const auto& [key, value] : tensors) {
    if (!contains(kept_blocks, top_level_name(key))) merged.emplace(key, value);
  }
  for (const auto& [key, value] : weights::state_dict(model)) {
    if (contains(kept_blocks, top_level_name(key))) merged[key] = value.detach().clone();
  }
  return weights::load_state_dict(model, merged);
}

}  // namespace dlwpt::training
