#pragma once

#include <torch/nn/module.h>

namespace dlwpt {

/// Re-initialises every Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d and Linear below
/// (and including) `module` as the book's `_init_weights` does for LunaModel and UNetWrapper:
/// weights from kaiming_normal_(a=0, mode='fan_out', nonlinearity='relu'), biases from
/// normal_(mean=-bound, std=bound) with bound = 1/sqrt(fan_out).
///
/// The biases' odd mean/std pair is the book's call `nn.init.normal_(m.bias, -bound, bound)`,
/// reproduced on purpose: with the same seed, C++ training then starts from exactly the
/// weights Python training starts from. Modules are visited in the order of Python's
/// `self.modules()`, which keeps the random draws in the same order too.
void init_weights_as_book(torch::nn::Module& module);

}  // namespace dlwpt
