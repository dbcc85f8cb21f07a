#!/usr/bin/env python3
"""Reads a NIfTI file with nibabel, as 3D Slicer and nibabel users would, for the C++ tests.

usage: read_nifti.py NIFTI OUT

Writes to OUT, as a tensor archive (tools/archive.py), `voxels` (float64, slice, row, column
order: nibabel's x, y, z axes reversed) and `affine` (float64 4 x 4, voxel to RAS millimetres,
nibabel's `img.affine`).
"""

import pathlib
import sys

import nibabel
import numpy
import torch

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
import archive  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    image = nibabel.load(sys.argv[1])
    voxels = numpy.asarray(image.dataobj, dtype=numpy.float64).transpose(2, 1, 0)
    archive.save_tensors({'voxels': torch.from_numpy(numpy.ascontiguousarray(voxels)),
                          'affine': torch.from_numpy(numpy.asarray(image.affine, dtype=numpy.float64))},
                         sys.argv[2])


if __name__ == '__main__':
    main()
