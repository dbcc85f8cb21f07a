#!/usr/bin/env python3
"""The book's part-2 nodule analysis in Python (chapters 13-14), the reference the C++
pipeline (ct/pipeline.h, the ct-segment app) is tested against.

usage: ct_reference.py SCAN.mhd SEGMENTATION.pt NODULE.pt OUT [--malignancy M.pt]
                       [--batch-size N]

SCAN is a MetaImage volume in HU; the model archives are read into the reference models of
tools/reference_models.py. Steps, as the book's nodule_analysis.py: the U-Net on every slice
with its 3 neighbours on each side (clamped), HU clipped to [-1000, 1000]; mask = probability
> 0.5, eroded once (scipy.ndimage.binary_erosion); components (scipy.ndimage.label); centers
of mass of clip(HU) + 1001 (scipy.ndimage.center_of_mass); irc2xyz; the 32 x 48 x 48 chunk
around the rounded center (the book's getRawCandidate, padded with -1000 HU where the volume
is smaller); LunaModel's probability of class 1. Writes a tensor archive OUT with
`probability`, `mask`, and per candidate `ids`, `center_irc`, `center_xyz`, `voxels`,
`nodule_probability` (and `malignancy_probability`), plus `seconds`, the pipeline's time.
"""

import argparse
import pathlib
import sys
import time

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import numpy as np  # noqa: E402
import scipy.ndimage as ndimage  # noqa: E402
import torch  # noqa: E402

import archive  # noqa: E402
from metaimage import read_mhd  # noqa: E402

CONTEXT_SLICES = 3
CHUNK = (32, 48, 48)


def segmentation_input(hu, first, count):
    slices = hu.shape[0]
    stacks = np.stack([np.stack([hu[min(max(i + k, 0), slices - 1)]
                                 for k in range(-CONTEXT_SLICES, CONTEXT_SLICES + 1)])
                       for i in range(first, first + count)])
    return torch.from_numpy(stacks.astype(np.float32)).clamp(-1000, 1000)


def segment(model, hu, batch_size):
    probability = np.zeros(hu.shape, np.float32)
    with torch.no_grad():
        for first in range(0, hu.shape[0], batch_size):
            count = min(batch_size, hu.shape[0] - first)
            probability[first:first + count] = model(segmentation_input(hu, first, count))[:, 0].numpy()
    return probability


def irc2xyz(irc, origin, spacing, direction):
    return direction @ (np.array(irc)[::-1] * spacing) + origin


def candidate_chunk(hu, center_irc):
    slices = []
    for axis, center in enumerate(center_irc):
        extent = hu.shape[axis]
        assert 0 <= center < extent
        start = int(np.round(center)) - CHUNK[axis] // 2
        start = max(0, min(start, extent - CHUNK[axis]))
        slices.append(slice(start, start + min(CHUNK[axis], extent)))
    chunk = np.clip(hu[tuple(slices)].astype(np.float32), -1000, 1000)
    padding = [(0, CHUNK[axis] - chunk.shape[axis]) for axis in range(3)]
    return np.pad(chunk, padding, constant_values=-1000)


def classify(model, hu, centers, batch_size=16):
    probabilities = []
    with torch.no_grad():
        for first in range(0, len(centers), batch_size):
            chunks = np.stack([candidate_chunk(hu, c) for c in centers[first:first + batch_size]])
            _, p = model(torch.from_numpy(chunks).unsqueeze(1))
            probabilities.extend(p[:, 1].double().tolist())
    return probabilities


def load_model(path):
    _, model = archive.load_reference_model(path)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('scan', type=pathlib.Path)
    parser.add_argument('segmentation', type=pathlib.Path)
    parser.add_argument('nodule', type=pathlib.Path)
    parser.add_argument('out', type=pathlib.Path)
    parser.add_argument('--malignancy', type=pathlib.Path)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: as torch sets)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    hu, origin, spacing, direction = read_mhd(args.scan)
    hu = hu.astype(np.float32)
    seg_model, nodule_model = load_model(args.segmentation), load_model(args.nodule)
    start = time.perf_counter()
    probability = segment(seg_model, hu, args.batch_size)
    mask = ndimage.binary_erosion(probability > 0.5, iterations=1)
    labels, count = ndimage.label(mask)
    centers = ndimage.center_of_mass(hu.clip(-1000, 1000) + 1001, labels=labels,
                                     index=np.arange(1, count + 1))
    voxels = ndimage.sum(np.ones_like(labels), labels=labels, index=np.arange(1, count + 1))
    tensors = {
        'probability': torch.from_numpy(probability), 'mask': torch.from_numpy(mask),
        'ids': torch.arange(1, count + 1),
        'center_irc': torch.tensor(np.array(centers, np.float64).reshape(-1, 3)),
        'center_xyz': torch.tensor(np.array([irc2xyz(c, origin, spacing, direction)
                                             for c in centers], np.float64).reshape(-1, 3)),
        'voxels': torch.tensor(np.asarray(voxels, np.int64).reshape(-1)),
        'nodule_probability': torch.tensor(classify(nodule_model, hu, centers), dtype=torch.float64),
    }
    if args.malignancy:
        tensors['malignancy_probability'] = torch.tensor(
            classify(load_model(args.malignancy), hu, centers), dtype=torch.float64)
    tensors['seconds'] = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    archive.save_tensors(tensors, args.out)
    print(f'{args.scan.name}: {count} candidates, {mask.sum()} mask voxels, '
          f'{tensors["seconds"].item():.1f} s')


if __name__ == '__main__':
    main()
