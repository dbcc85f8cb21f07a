#!/usr/bin/env python3
"""Exports a weights archive of this project to ONNX, for runtimes other than libtorch.

Any archive the C++ side or tools/convert.py wrote (it names its model and options) is loaded
strictly into the Python reference model and exported with torch.onnx at the opset given
(default 11, the newest OpenCV 4.6's DNN module imports for these models). The batch axis is
dynamic, and so are height and width for the image models; the file is checked with
onnx.checker before it is renamed into place.

usage: export.py ARCHIVE -o OUT.onnx [--opset N] [--static]
"""

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
from atomic import atomic_path  # noqa: E402
from convert import EXAMPLE_INPUT_SHAPES  # noqa: E402

DEFAULT_OPSET = 11

OUTPUT_NAMES = {
    'ResNetGenerator': ['output'],
    'LunaModel': ['logits', 'probabilities'],
    'UNetWrapper': ['output'],
}


def dynamic_axes(model_name):
    """Batch everywhere; height and width too where the model takes any size."""
    spatial = {0: 'batch', 2: 'height', 3: 'width'}
    if model_name == 'LunaModel':
        return {'input': {0: 'batch'}, 'logits': {0: 'batch'}, 'probabilities': {0: 'batch'}}
    return {'input': spatial, 'output': spatial}


def export(archive_path, out, opset=DEFAULT_OPSET, dynamic=True):
    """Writes the ONNX model of the archive; returns (model name, options)."""
    import onnx  # only this tool needs it (Debian: python3-onnx)

    model_name, model = archive.load_reference_model(archive_path)
    _, options = archive.read_model_config(archive_path)
    typed = archive.complete_options(model_name, {
        key: archive.typed_option(key, value, archive.default_options(model_name))
        for key, value in options.items()})
    example = torch.zeros(EXAMPLE_INPUT_SHAPES[model_name](typed))
    model.eval()
    with atomic_path(out) as temporary, torch.no_grad():
        torch.onnx.export(model, example, str(temporary), opset_version=opset,
                          input_names=['input'], output_names=OUTPUT_NAMES[model_name],
                          dynamic_axes=dynamic_axes(model_name) if dynamic else None)
        onnx.checker.check_model(onnx.load(str(temporary)), full_check=True)
    return model_name, typed


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archive', type=pathlib.Path)
    parser.add_argument('-o', '--out', type=pathlib.Path, required=True, help='ONNX file to write')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--static', action='store_true',
                        help='fix every axis to the example input (some runtimes need it)')
    args = parser.parse_args()
    try:
        model_name, options = export(args.archive, args.out, args.opset, not args.static)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        sys.exit(f'export: {args.archive}: {error}')
    print(f'{args.archive} -> {args.out}: {model_name} {options}, opset {args.opset}')


if __name__ == '__main__':
    main()
