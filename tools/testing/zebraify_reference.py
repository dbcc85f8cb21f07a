#!/usr/bin/env python3
"""The zebraify pipeline in Python, the reference the C++ app is tested against.

usage: zebraify_reference.py ARCHIVE IMAGES OUT [--size N] [--threads N]

IMAGES is a tensor archive of decoded 8-bit images `image_<i>` (1 x 3 x H x W, uint8, as the
C++ app decodes them: JPEG decoding is not the model's business). For each, this applies the
book's chapter-2 pipeline as zebraify does: ToTensor (to [0, 1]), a bilinear antialiased
resize bounding the longer side by N (0: none; never enlarging), reflection padding of the
bottom and right to multiples of 4, the generator of ARCHIVE (tools/reference_models.py with
the archive's weights), the crop back, (y + 1) / 2, and rounding to 8 bits; writes `zebra_<i>`.
"""

import argparse
import pathlib
import sys

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import archive  # noqa: E402

SIDE_MULTIPLE = 4


def resize_to_fit(x, max_side):
    height, width = x.shape[2:]
    longer = max(height, width)
    if max_side == 0 or longer <= max_side:
        return x
    scale = max_side / longer
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True)


def pad_to_multiple(x, multiple):
    pad_bottom = (multiple - x.shape[2] % multiple) % multiple
    pad_right = (multiple - x.shape[3] % multiple) % multiple
    if pad_bottom == 0 and pad_right == 0:
        return x
    return F.pad(x, (0, pad_right, 0, pad_bottom), mode='reflect')


def zebraify(generator, image, max_side):
    x = resize_to_fit(image.float() / 255, max_side)
    height, width = x.shape[2:]
    y = generator(pad_to_multiple(x, SIDE_MULTIPLE))[:, :, :height, :width]
    return ((y + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archive', type=pathlib.Path)
    parser.add_argument('images', type=pathlib.Path)
    parser.add_argument('out', type=pathlib.Path)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--threads', type=int, default=0, help='0: torch\'s default')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model_name, generator = archive.load_reference_model(args.archive)
    if model_name != 'ResNetGenerator':
        sys.exit(f'{args.archive}: holds a {model_name}, not a ResNetGenerator')
    generator.eval()
    images = archive.load_tensors(args.images)
    with torch.no_grad():
        zebras = {f'zebra_{i}': zebraify(generator, images[f'image_{i}'], args.size)
                  for i in range(len(images))}
    archive.save_tensors(zebras, args.out)
    print(f'{len(zebras)} images through the Python zebraify pipeline')


if __name__ == '__main__':
    main()
