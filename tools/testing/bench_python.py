#!/usr/bin/env python3
"""Times one model in Python PyTorch eager (the reference model of tools/reference_models.py
with an archive's weights) and prints one JSON line, as build/apps/dlwpt-bench does for the C++
engines.

usage: bench_python.py ARCHIVE --shape 1,3,256,256 [--runs 5] [--warmup 1] [--threads N] [--train]

--train times training steps of the book's recipe instead (LunaModel: SGD and cross entropy;
UNetWrapper: Adam and the Dice + false-negative loss), as `dlwpt-bench --train` does.
"""

import argparse
import json
import os
import pathlib
import sys
import time

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import torch  # noqa: E402

import torch.nn.functional as F  # noqa: E402

import archive  # noqa: E402
from training_reference import segmentation_loss  # noqa: E402


def training_step(model_name, model, x):
    """One step of the book's recipe for the model, on fixed random labels."""
    model.train()
    torch.manual_seed(0)
    if model_name == 'LunaModel':
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.99)
        labels = torch.randint(0, 2, (x.shape[0],))
        loss_of = lambda: F.cross_entropy(model(x)[0], labels)  # noqa: E731
    elif model_name == 'UNetWrapper':
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        labels = (torch.rand((x.shape[0], 1) + tuple(x.shape[2:])) > 0.9).float()
        loss_of = lambda: segmentation_loss(model(x), labels)  # noqa: E731
    else:
        sys.exit(f'--train times LunaModel and UNetWrapper archives, not {model_name}')

    def step():
        optimizer.zero_grad()
        loss_of().backward()
        optimizer.step()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archive', type=pathlib.Path)
    parser.add_argument('--shape', required=True)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--train', action='store_true')
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    model_name, model = archive.load_reference_model(args.archive)
    model.eval()
    x = torch.rand([int(s) for s in args.shape.split(',')])
    if args.train:
        step = training_step(model_name, model, x)
    else:
        def step():
            with torch.no_grad():
                model(x)
    times = []
    for run in range(args.warmup + args.runs):
        start = time.perf_counter()
        step()
        if run >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({'median_ms': times[len(times) // 2], 'min_ms': times[0],
                      'max_ms': times[-1], 'threads': threads, 'times_ms': times}))


if __name__ == '__main__':
    main()
