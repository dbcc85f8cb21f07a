"""The benchmark cases: the models at the sizes the speed issue measures, with their FLOP
counts, and the files each engine runs (traced archive, ONNX export).

usage: bench_cases.py list | bench_cases.py export NAME FOLDER
(`export` prints {"flops": N, "shape": [...]} as JSON.)
"""

import json
import pathlib
import sys

import torch

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
import archive  # noqa: E402
from reference_models import BOOK_SEGMENTATION_CONFIG, build_model  # noqa: E402

# name: (model class, options, input shape)
CASES = {
    'cyclegan_256': ('ResNetGenerator', {}, (1, 3, 256, 256)),
    'cyclegan_512': ('ResNetGenerator', {}, (1, 3, 512, 512)),
    'unet_512_b1': ('UNetWrapper', BOOK_SEGMENTATION_CONFIG, (1, 7, 512, 512)),
    'unet_512_b8': ('UNetWrapper', BOOK_SEGMENTATION_CONFIG, (8, 7, 512, 512)),
    'luna_b1': ('LunaModel', {}, (1, 1, 32, 48, 48)),
    'luna_b32': ('LunaModel', {}, (32, 1, 32, 48, 48)),
}


def count_flops(model, example):
    """Multiply-adds of the convolutions and linear layers, times 2."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        kernel = module.weight[0].numel()  # in/groups * k...
        if isinstance(module, (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)):
            total += 2 * inputs[0].numel() * module.weight[0].numel()
        else:
            total += 2 * output.numel() * kernel

    def linear(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d,
                               torch.nn.ConvTranspose3d)):
            hooks.append(module.register_forward_hook(conv))
        elif isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(linear))
    with torch.no_grad():
        model(example)
    for hook in hooks:
        hook.remove()
    return total


def example_input(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def build_case(name):
    model_name, options, shape = CASES[name]
    torch.manual_seed(0)
    return build_model(model_name, **options).eval(), example_input(shape)


def export_case(name, folder):
    """Writes <name>.pt (traced, with configuration) and <name>.onnx; returns the FLOPs."""
    model_name, options, _ = CASES[name]
    model, example = build_case(name)
    archive.save_model_archive(model, example, folder / f'{name}.pt', model_name, options)
    outputs = ['logits', 'probabilities'] if model_name == 'LunaModel' else ['output']
    with torch.no_grad():
        torch.onnx.export(model, example, str(folder / f'{name}.onnx'), opset_version=11,
                          input_names=['input'], output_names=outputs)
    return count_flops(model, example)


def main():
    if sys.argv[1:2] == ['list']:
        print('\n'.join(CASES))
    elif sys.argv[1:2] == ['export'] and len(sys.argv) == 4:
        folder = pathlib.Path(sys.argv[3])
        folder.mkdir(parents=True, exist_ok=True)
        flops = export_case(sys.argv[2], folder)
        print(json.dumps({'flops': flops, 'shape': list(CASES[sys.argv[2]][2])}))
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
