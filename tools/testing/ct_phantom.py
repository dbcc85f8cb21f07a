#!/usr/bin/env python3
"""Writes a synthetic chest CT as MetaImage for the pipeline tests: air around an elliptic
body of soft tissue, two lungs, and spherical nodules in them, with seeded noise, non-unit
spacing, a non-zero origin and a non-identity (but orthonormal) direction.

usage: ct_phantom.py OUT.mhd [--slices N] [--size N] [--seed N]
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from metaimage import write_mhd  # noqa: E402

ORIGIN = (-182.5, -160.25, -310.0)
SPACING = (0.7, 0.75, 2.5)
# A quarter turn about z and the slice axis reversed: orthonormal, and not symmetric, so that
# a transposed direction matrix would show.
DIRECTION = ((0, -1, 0), (1, 0, 0), (0, 0, -1))


def phantom(slices, size, seed):
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:slices, 0:size, 0:size].astype(np.float32)
    c = size / 2
    hu = np.full((slices, size, size), -1000, np.float32)
    body = ((x - c) / (0.45 * size)) ** 2 + ((y - c) / (0.35 * size)) ** 2 < 1
    hu[body] = 40
    for side in (-1, 1):
        lung = ((x - c - side * 0.2 * size) / (0.15 * size)) ** 2 + \
            ((y - c) / (0.25 * size)) ** 2 < 1
        hu[lung] = -850
    for (zc, yc, xc, radius) in [(0.5, 0.45, 0.3, 4.0), (0.3, 0.55, 0.7, 3.0),
                                 (0.7, 0.4, 0.68, 5.0), (0.55, 0.6, 0.25, 2.5)]:
        # Spacing is anisotropic: the radius is in row/column voxels, slices are thicker.
        sphere = (((z - zc * slices) * SPACING[2] / SPACING[0]) ** 2 + (y - yc * size) ** 2 +
                  (x - xc * size) ** 2) < radius ** 2
        hu[sphere] = 60
    hu += rng.normal(0, 20, hu.shape).astype(np.float32)
    return np.round(hu).astype(np.int16)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out', type=pathlib.Path)
    parser.add_argument('--slices', type=int, default=40)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--seed', type=int, default=7)
    args = parser.parse_args()
    write_mhd(args.out, phantom(args.slices, args.size, args.seed), ORIGIN, SPACING, DIRECTION)


if __name__ == '__main__':
    main()
