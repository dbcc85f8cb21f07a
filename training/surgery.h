#pragma once

// Model surgery for research code: name, freeze and replace parts of a model, and load a
// checkpoint into all but some of its blocks (the book's malignancy fine-tuning).

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "dlwpt/weights/archive.h"

namespace dlwpt::training {

/// Every parameter's state_dict key, in registration order.
std::vector<std::string> parameter_names(const torch::nn::Module& model);

/// The direct children that hold parameters, in registration order: the "blocks" of the
/// book's fine-tuning (for LunaModel: tail_batchnorm, block1 .. block4, head_linear).
std::vector<std::string> parameter_blocks(const torch::nn::Module& model);

/// Sets requires_grad of every parameter whose key is `prefix` or starts with `prefix.`;
/// returns how many it set. Throws c10::Error when none matches (a misspelt prefix).
int64_t set_trainable(torch::nn::Module& model, const std::string& prefix, bool trainable);

/// Freezes every parameter outside the last `depth` parameter blocks (the book's
/// `--finetune-depth`: 1 trains the head only, 2 also block4). Returns the trained blocks.
std::vector<std::string> freeze_all_but_last_blocks(torch::nn::Module& model, int64_t depth);

/// The parameters that require gradients, the ones an optimizer needs to see.
std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model);

/// Loads `tensors` into `model` strictly, except every tensor of the named top-level blocks,
/// which keep their values (the book loads a nodule classifier's checkpoint into all but
/// `head_linear`, freshly initialised, to fine-tune it into a malignancy classifier).
weights::LoadReport load_except_blocks(torch::nn::Module& model, const weights::TensorMap& tensors,
                                       const std::vector<std::string>& kept_blocks);

/// Replaces the direct child `name`, held by the model in `member`, by `replacement`: both the
/// registered module (its state_dict keys keep the name) and the member forward() calls, which
/// `Module::replace_module` alone would leave pointing at the old module. Example:
/// `replace_block(*model, "head_linear", model->head_linear, torch::nn::Linear(1152, 4))`.
template <typename ModuleHolder>
void replace_block(torch::nn::Module& model, const std::string& name, ModuleHolder& member,
                   ModuleHolder replacement) {
  const auto children = model.named_children();
  const auto* registered = children.find(name);
  TORCH_CHECK(registered != nullptr, "the model has no block named '", name, "'");
  TORCH_CHECK(registered->get() == member.ptr().get(), "block '", name,
              "' is not the module held by the member given");
  member = model.replace_module(name, std::move(replacement));
}

}  // namespace dlwpt::training
