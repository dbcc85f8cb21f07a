#!/usr/bin/env python3
"""Writes a synthetic RGB picture as PNG, with nothing but the standard library and numpy,
for demos and tests when the book's horse.jpg is not at hand.

usage: sample_image.py OUT.png [WIDTH HEIGHT] [--tensors IMAGES.pt]

--tensors also writes the picture as tools/testing/zebraify_reference.py takes it (`image_0`,
1 x 3 x H x W uint8), the pixels a PNG decoder reads back from OUT.png.
"""

import pathlib
import struct
import sys
import zlib

import numpy as np


def sample_picture(width, height):
    """H x W x 3 uint8: sky, grass, and a brown horse-like body with legs."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3), np.uint8)
    picture[...] = np.stack([120 + 60 * y // height, 170 + 40 * y // height,
                             np.full_like(y, 235)], axis=-1)
    grass = y > 0.7 * height
    picture[grass] = np.stack([60 + 30 * x[grass] // width, 140 + 0 * x[grass],
                               50 + 0 * x[grass]], axis=-1)
    body = ((x - 0.5 * width) / (0.25 * width)) ** 2 + ((y - 0.5 * height) / (0.12 * height)) ** 2 < 1
    legs = (y > 0.5 * height) & (y < 0.8 * height) & (((x // (0.06 * width)).astype(int) % 3) == 1) & \
        (abs(x - 0.5 * width) < 0.2 * width)
    head = ((x - 0.8 * width) / (0.07 * width)) ** 2 + ((y - 0.35 * height) / (0.08 * height)) ** 2 < 1
    picture[body | legs | head] = (120, 75, 40)
    return picture


def write_png(path, rgb):
    """Writes H x W x 3 uint8 as an 8-bit RGB PNG."""
    rows = b''.join(b'\x00' + row.tobytes() for row in np.ascontiguousarray(rgb))

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    header = struct.pack('>IIBBBBB', rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 0)
    pathlib.Path(path).write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
                                   chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def write_tensors(path, rgb):
    """The picture as a tensor archive of `image_0`; torch only loads when asked for this."""
    sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
    import torch
    import archive
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).contiguous()
    archive.save_tensors({'image_0': image}, path)


def main():
    args = sys.argv[1:]
    tensors = None
    if '--tensors' in args:
        at = args.index('--tensors')
        if at + 1 >= len(args):
            sys.exit(__doc__)
        tensors = args[at + 1]
        del args[at:at + 2]
    if len(args) not in (1, 3) or args[0].startswith('-'):
        sys.exit(__doc__)
    width, height = (int(args[1]), int(args[2])) if len(args) == 3 else (480, 320)
    picture = sample_picture(width, height)
    write_png(args[0], picture)
    if tensors:
        write_tensors(tensors, picture)


if __name__ == '__main__':
    main()
