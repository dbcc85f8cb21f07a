#!/usr/bin/env python3
"""Writes the training references the C++ training parity tests check against: a few steps of
the book's training recipes in PyTorch, from seeded weights on seeded batches (no
augmentation).

For each case, in --out:
- `<case>.init.pt`: the model as constructed (seeded), before any surgery or step;
- `<case>.pretrained.pt` (fine-tuning cases): the model whose weights are loaded except its last
  block, the book's malignancy fine-tuning (p2ch14 training.py `--finetune`);
- `<case>.io.pt`: `input_<i>`, `label_<i>` and the loss of step i `loss_<i>`, then every
  parameter and buffer after the last step as `final.<state_dict key>`.

Also `augmentation.io.pt`: a CT-like chunk and a slice stack with fixed transforms (flip,
scale, offset and rotation together) and what F.affine_grid + F.grid_sample (border padding,
align_corners=False, as the book's augmentation) make of them.

Cases: LunaModel with SGD (momentum 0.99, weight decay 1e-4) and cross entropy; the book's
U-Net with Adam and the Dice + 8 x false-negative Dice loss; LunaModel fine-tuned at depth 2
(block4 and head_linear trainable, all else frozen).

usage: training_reference.py --out FOLDER
"""

import argparse
import math
import pathlib
import sys

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ code it is compared with.
use_app_kernels()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import archive  # noqa: E402
from reference_models import BOOK_SEGMENTATION_CONFIG, build_model  # noqa: E402

STEPS = 5

CASES = {
    'train_luna_sgd': dict(model='LunaModel', options={}, task='classification',
                           batch=(4, 1, 32, 48, 48),
                           optimizer=dict(kind='sgd', lr=1e-3, momentum=0.99, weight_decay=1e-4)),
    'train_unet_adam': dict(model='UNetWrapper', options=BOOK_SEGMENTATION_CONFIG,
                            task='segmentation', batch=(2, 7, 64, 64),
                            optimizer=dict(kind='adam', lr=1e-3)),
    'train_luna_finetune': dict(model='LunaModel', options={}, task='classification',
                                batch=(4, 1, 32, 48, 48), finetune_depth=2,
                                optimizer=dict(kind='sgd', lr=3e-3, momentum=0.99,
                                               weight_decay=1e-4)),
}


def dice_loss(prediction, label, epsilon=1.0):
    """The book's soft Dice loss per sample (p2ch13 training.py `diceLoss`)."""
    dice_label = label.sum(dim=[1, 2, 3])
    dice_prediction = prediction.sum(dim=[1, 2, 3])
    dice_correct = (prediction * label).sum(dim=[1, 2, 3])
    return 1 - (2 * dice_correct + epsilon) / (dice_prediction + dice_label + epsilon)


def segmentation_loss(prediction, label):
    """The book's U-Net loss: Dice loss plus 8 times the Dice loss of the prediction masked by
    the label (the false-negative term)."""
    return dice_loss(prediction, label).mean() + 8 * dice_loss(prediction * label, label).mean()


def make_optimizer(parameters, kind, lr, momentum=0.0, weight_decay=0.0):
    if kind == 'sgd':
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


def finetune_surgery(model, pretrained_state, depth):
    """The book's `--finetune`: load all but the last parameter-holding block, then freeze
    every parameter outside the last `depth` such blocks."""
    blocks = [name for name, child in model.named_children() if list(child.parameters())]
    model.load_state_dict({key: value for key, value in pretrained_state.items()
                           if key.split('.')[0] != blocks[-1]}, strict=False)
    trainable = blocks[-depth:]
    for name, parameter in model.named_parameters():
        if name.split('.')[0] not in trainable:
            parameter.requires_grad_(False)


def batches(case, generator):
    shape = case['batch']
    for _ in range(STEPS):
        inputs = torch.randn(shape, generator=generator)
        if case['task'] == 'classification':
            labels = torch.randint(0, 2, (shape[0],), generator=generator)
        else:
            labels = (torch.rand((shape[0], 1) + shape[2:], generator=generator) > 0.8).float()
        yield inputs, labels


def write_case(name, case, out, seed):
    torch.manual_seed(seed)
    model = build_model(case['model'], **case['options'])
    example = torch.zeros((1,) + case['batch'][1:])
    archive.save_model_archive(model, example, out / f'{name}.init.pt', case['model'],
                               case['options'])
    if 'finetune_depth' in case:
        torch.manual_seed(seed + 1)
        pretrained = build_model(case['model'], **case['options'])
        archive.save_model_archive(pretrained, example, out / f'{name}.pretrained.pt',
                                   case['model'], case['options'])
        finetune_surgery(model, pretrained.state_dict(), case['finetune_depth'])
    model.train()  # save_model_archive left it in eval mode
    optimizer = make_optimizer(model.parameters(), **case['optimizer'])
    tensors = {}
    generator = torch.Generator().manual_seed(seed + 2)
    for step, (inputs, labels) in enumerate(batches(case, generator)):
        optimizer.zero_grad()
        if case['task'] == 'classification':
            logits, _ = model(inputs)
            loss = F.cross_entropy(logits, labels)
        else:
            loss = segmentation_loss(model(inputs), labels)
        loss.backward()
        optimizer.step()
        tensors.update({f'input_{step}': inputs, f'label_{step}': labels,
                        f'loss_{step}': loss.detach().reshape(1)})
    for key, value in model.state_dict().items():
        tensors[f'final.{key}'] = value.detach().clone()
    archive.save_tensors(tensors, out / f'{name}.io.pt')
    losses = ', '.join(f"{tensors[f'loss_{i}'].item():.6f}" for i in range(STEPS))
    print(f'{name}: {STEPS} steps, losses {losses}')


def fixed_transform(dims, angle, flip_axis, scales, offsets):
    """A (dims + 1) square transform as the book builds one, without the randomness."""
    transform = torch.eye(dims + 1, dtype=torch.float64)
    transform[flip_axis, flip_axis] = -1
    for axis in range(dims):
        transform[axis, axis] *= scales[axis]
        transform[axis, dims] = offsets[axis]
    rotation = torch.eye(dims + 1, dtype=torch.float64)
    rotation[0, 0], rotation[0, 1] = math.cos(angle), -math.sin(angle)
    rotation[1, 0], rotation[1, 1] = math.sin(angle), math.cos(angle)
    return (transform @ rotation).float()


def write_augmentation(out, seed):
    generator = torch.Generator().manual_seed(seed + 3)
    tensors = {}
    for name, shape, transform in [
            ('chunk', (1, 1, 32, 48, 48), fixed_transform(3, 0.7, 0, (1.1, 0.85, 1.05),
                                                          (0.05, -0.08, 0.1))),
            ('slices', (2, 7, 64, 64), fixed_transform(2, 2.3, 1, (0.9, 1.15), (-0.03, 0.02)))]:
        batch = torch.randn(shape, generator=generator) * 400 - 300
        theta = transform[:len(shape) - 2].unsqueeze(0).expand(shape[0], -1, -1)
        grid = F.affine_grid(theta, batch.size(), align_corners=False)
        tensors[f'{name}_input'] = batch
        tensors[f'{name}_transform'] = transform
        tensors[f'{name}_output'] = F.grid_sample(batch, grid, padding_mode='border',
                                                  align_corners=False)
    archive.save_tensors(tensors, out / 'augmentation.io.pt')
    print('augmentation: a chunk and a slice stack through fixed transforms')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=pathlib.Path, required=True)
    parser.add_argument('--seed', type=int, default=1234)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        write_case(name, case, args.out, args.seed)
    write_augmentation(args.out, args.seed)


if __name__ == '__main__':
    main()
