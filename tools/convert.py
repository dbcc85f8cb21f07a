#!/usr/bin/env python3
"""Converts the book's checkpoints into TorchScript archives the C++ models load.

Accepts a plain state_dict (the CycleGAN `horse2zebra_0.4.0.pth`) or the part-2 training
checkpoints (`*.state`: a dict whose `model_state` is the state_dict), in either of PyTorch's
pickle formats (the legacy one of PyTorch <= 1.5 included). The model class and its options are
inferred from the tensor names and shapes; `--option key=value` overrides or completes them
(the U-Net's `padding` is not visible in its shapes and defaults to the book's True).
The state_dict is loaded strictly into the reference model, traced, and saved with a
`dlwpt_model.cfg` entry naming the model and options.
"""

import argparse
import math
import pathlib
import re
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
from reference_models import build_model  # noqa: E402

EXAMPLE_INPUT_SHAPES = {
    'ResNetGenerator': lambda o: (1, o['input_nc'], 64, 64),
    'LunaModel': lambda o: (1, o['in_channels'], 32, 48, 48),
    # Unpadded U-Nets shrink every level: 572 is the original U-Net's input size.
    'UNetWrapper': lambda o: (1, o['in_channels'], 64 if o['padding'] else 572,
                              64 if o['padding'] else 572),
}


def read_state_dict(path):
    checkpoint = torch.load(str(path), map_location='cpu')
    state = checkpoint.get('model_state', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{path}: neither a state_dict nor a checkpoint with a model_state')
    # Checkpoints written from nn.DataParallel prefix every key with 'module.'.
    if state and all(key.startswith('module.') for key in state):
        state = {key[len('module.'):]: value for key, value in state.items()}
    return state


def infer_resnet_generator(state):
    blocks = {int(m.group(1)) for key in state
              if (m := re.match(r'model\.(\d+)\.conv_block\.', key))}
    last_conv = max((int(m.group(1)) for key in state
                     if (m := re.match(r'model\.(\d+)\.weight$', key))))
    return dict(input_nc=state['model.1.weight'].shape[1], ngf=state['model.1.weight'].shape[0],
                output_nc=state[f'model.{last_conv}.weight'].shape[0], n_blocks=len(blocks))


def infer_luna_model(state):
    conv = state['block1.conv1.weight']
    return dict(in_channels=conv.shape[1], conv_channels=conv.shape[0])


def infer_unet_wrapper(state):
    depth = len({m.group(1) for key in state if (m := re.match(r'unet\.down_path\.(\d+)\.', key))})
    first_channels = state['unet.down_path.0.block.0.weight'].shape[0]
    return dict(in_channels=state['input_batchnorm.weight'].shape[0],
                n_classes=state['unet.last.weight'].shape[0], depth=depth,
                wf=int(round(math.log2(first_channels))),
                padding=True,
                batch_norm=any('running_mean' in key for key in state if '.down_path.' in key),
                up_mode='upsample' if 'unet.up_path.0.up.1.weight' in state else 'upconv')


def infer_model(state):
    if 'model.1.weight' in state:
        return 'ResNetGenerator', infer_resnet_generator(state)
    if 'tail_batchnorm.weight' in state:
        return 'LunaModel', infer_luna_model(state)
    if 'unet.last.weight' in state:
        return 'UNetWrapper', infer_unet_wrapper(state)
    raise ValueError('cannot tell the model from the keys: ' + ', '.join(list(state)[:5]))


def parse_option(text, current):
    key, _, value = text.partition('=')
    return key, archive.typed_option(key, value, current)


def load_checkpoint(path, overrides=()):
    """Returns (model class name, options, reference model with the checkpoint's weights)."""
    state = read_state_dict(path)
    model_name, options = infer_model(state)
    options = {k: (int(v) if isinstance(v, torch.Size) else v) for k, v in options.items()}
    for text in overrides:
        key, value = parse_option(text, options)
        options[key] = value
    model = build_model(model_name, **options)
    model.load_state_dict(state, strict=True)
    return model_name, options, model


def convert_checkpoint(path, out, overrides=()):
    model_name, options, model = load_checkpoint(path, overrides)
    example = torch.randn(EXAMPLE_INPUT_SHAPES[model_name](options))
    archive.save_model_archive(model, example, out, model_name, options)
    print(f'{path.name} -> {out}: {model_name} {options}')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', type=pathlib.Path)
    parser.add_argument('-o', '--out', type=pathlib.Path, required=True,
                        help='TorchScript archive to write')
    parser.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='set a model option the shapes do not tell (e.g. padding=false)')
    args = parser.parse_args()
    try:
        convert_checkpoint(args.checkpoint, args.out, args.option)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        sys.exit(f'convert: {args.checkpoint}: {error}')


if __name__ == '__main__':
    main()
