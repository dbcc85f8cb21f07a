#!/usr/bin/env python3
"""Times one model in Python PyTorch eager (the reference model of tools/reference_models.py
with an archive's weights) and prints one JSON line, as build/apps/dlwpt-bench does for the C++
engines.

usage: bench_python.py ARCHIVE --shape 1,3,256,256 [--runs 5] [--warmup 1] [--threads N]
"""

import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import torch  # noqa: E402

import archive  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archive', type=pathlib.Path)
    parser.add_argument('--shape', required=True)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    _, model = archive.load_reference_model(args.archive)
    model.eval()
    x = torch.rand([int(s) for s in args.shape.split(',')])
    times = []
    with torch.no_grad():
        for run in range(args.warmup + args.runs):
            start = time.perf_counter()
            model(x)
            if run >= args.warmup:
                times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({'median_ms': times[len(times) // 2], 'min_ms': times[0],
                      'max_ms': times[-1], 'threads': threads, 'times_ms': times}))


if __name__ == '__main__':
    main()
