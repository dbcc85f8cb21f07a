#!/usr/bin/env python3
"""Runs a model archive's weights in the Python reference model.

usage: check_archive.py ARCHIVE OUT [--inputs INPUTS]

Builds the reference model the archive's configuration names (tools/reference_models.py),
loads the archive's parameters and buffers into it with strict=True, and writes to OUT, as a
tensor archive, its state_dict (under 'loaded_state.') and, with --inputs, its eager outputs for each `input_<i>` of
INPUTS (`output_<i>`, or `logits_<i>` and `probabilities_<i>`). The C++ tests use it to check
that Python reads what C++ writes, and to get PyTorch's outputs for inputs made in C++.
"""

import argparse
import pathlib
import sys

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import torch  # noqa: E402

import archive  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archive', type=pathlib.Path)
    parser.add_argument('out', type=pathlib.Path)
    parser.add_argument('--inputs', type=pathlib.Path)
    args = parser.parse_args()

    model_name, model = archive.load_reference_model(args.archive)
    model.eval()
    tensors = {f'loaded_state.{key}': value for key, value in model.state_dict().items()}
    if args.inputs:
        inputs = archive.load_tensors(args.inputs)
        with torch.no_grad():
            for index in range(len(inputs)):
                outputs = model(inputs[f'input_{index}'])
                if model_name == 'LunaModel':
                    tensors[f'logits_{index}'], tensors[f'probabilities_{index}'] = outputs
                else:
                    tensors[f'output_{index}'] = outputs
    archive.save_tensors(tensors, args.out)
    print(f'{args.archive}: {model_name} loaded strictly in Python; wrote {len(tensors)} tensors')


if __name__ == '__main__':
    main()
