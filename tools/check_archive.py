#!/usr/bin/env python3
"""Reads a model archive written by C++ (`weights::save_model`) in Python: builds the reference
model its configuration names, loads the archive's state_dict into it with strict=True, and
writes that state_dict back as a tensor archive (for the C++ round-trip test).

usage: check_archive.py ARCHIVE OUT
"""

import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
from convert import parse_option  # noqa: E402
from reference_models import build_model, default_options  # noqa: E402


def typed_options(model_name, text_options):
    defaults = default_options(model_name)
    return dict(parse_option(f'{key}={value}', defaults) for key, value in text_options.items())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, out = sys.argv[1:]
    model_name, text_options = archive.read_model_config(source)
    model = build_model(model_name, **typed_options(model_name, text_options))
    model.load_state_dict(torch.jit.load(source).state_dict(), strict=True)
    archive.save_tensors(model.state_dict(), out)
    print(f'{source}: {model_name} loaded strictly in Python, {len(model.state_dict())} tensors')


if __name__ == '__main__':
    main()
