#!/usr/bin/env python3
"""The speed benchmark: every model case with every engine, in one run, as one table.

Engines: `native` (the torch::nn models of this project), `native-bf16` and `native-int8` (the
same in bfloat16 and int8, models/inference.h; int8 calibrated on the timed input), `jit` (the traced model through
torch::jit::load in C++, the book's cyclegan-jit), `python` (PyTorch eager, the same libtorch
underneath) and `opencv` (OpenCV's DNN module on the ONNX export, where it imports). Each
measurement runs in its own process (its peak resident memory is its own): median, min and max
of the timed runs after a warm-up, GFLOP/s from the counted multiply-adds, percent of the peak
of the row's precision measured in the same run, and speed relative to Python eager. A
precision's peak is a 2048^3 matrix product computed by the kernels the models use at that
precision (`dlwpt-bench --engine peak`: a 1x1 convolution through oneDNN, in int8 through
Int8Conv2d), for float32 also by the BLAS (`--engine matmul`), the best of several runs before
and after the cases: the fastest either kernel has shown is the limit to compare against. Then training steps of the book's recipes (LunaModel: SGD, batches
of 32 chunks; U-Net: Adam, 16 crops of 64x64) against the same steps in Python, and whole apps
against their Python pipelines (time and peak memory of the process): zebraify on a 512x512
picture (tools/testing/zebraify_reference.py) and, with the book's data (--dlwpt), the CT pipeline on
the real 99-slice series (tools/testing/ct_reference.py).

This machine's speed drifts by 10-40 % over minutes (a shared VM), so the engines of a case
take turns: --rounds rounds, each running every engine's process for --runs timed runs; the
statistics are over all runs of all rounds, so a slow spell hits every engine alike.

usage: benchmark.py [--build build] [--rounds 3] [--runs 5] [--threads N] [--cases NAME...]
                    [--dlwpt DIR]
Writes the table to stdout and as bench.md and bench.csv in --out (default BUILD/bench).
"""

import argparse
import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENGINES = ('native', 'native-bf16', 'native-int8', 'jit', 'python', 'opencv')
REDUCED_PRECISIONS = {'native-bf16': 'bfloat16', 'native-int8': 'int8'}
# Training steps of the book's recipes: name -> (inference case whose archive it trains, input
# shape). The book trains LunaModel on batches of 32 chunks and the U-Net on 64x64 crops.
TRAINING_CASES = {
    'luna_train_b32': ('luna_b32', '32,1,32,48,48'),
    'unet_train_b16_64': ('unet_512_b1', '16,7,64,64'),
}
PYTHON = sys.executable


def summarise(times):
    """median_ms, min_ms, max_ms of a list of times in ms."""
    times = sorted(times)
    return dict(median_ms=times[len(times) // 2], min_ms=times[0], max_ms=times[-1])


def run_measured(command):
    """Runs a command; returns (its JSON line or None, its peak RSS in MB, exit status,
    stderr). The peak comes from os.wait4, for this child alone; this process never imports
    torch, as a forked child reports at least its parent's peak."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    result = next((json.loads(line) for line in out.splitlines() if line.startswith('{')), None)
    return result, usage.ru_maxrss / 1024, process.returncode, err.strip()


def engine_command(engine, build, folder, case, shape, args):
    common = ['--shape', shape, '--runs', str(args.runs), '--warmup', str(args.warmup),
              '--threads', str(args.threads)]
    if engine == 'python':
        return [PYTHON, str(ROOT / 'tools' / 'testing' / 'bench_python.py'), str(folder / f'{case}.pt')] + common
    target = folder / (f'{case}.onnx' if engine == 'opencv' else f'{case}.pt')
    if engine == 'baseline':  # the native engine of another build: a change's before and after
        build, engine = args.baseline, 'native'
    if engine in REDUCED_PRECISIONS:  # the native engine in another precision (models/inference.h)
        return [str(build / 'apps' / 'dlwpt-bench'), '--engine', 'native', '--precision', REDUCED_PRECISIONS[engine],
                '--archive', str(target)] + common
    return [str(build / 'apps' / 'dlwpt-bench'), '--engine', engine, '--archive', str(target)] + common


def timed_process(command):
    """(wall seconds, peak RSS in MB, exit status, stderr, stdout) of a whole command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    return (time.perf_counter() - start, usage.ru_maxrss / 1024,
            os.waitstatus_to_exitcode(status), err.strip(), out)


def export_case(case, folder):
    """Writes a case's archives (bench_cases.py export); returns its FLOP count and shape."""
    export = subprocess.run([PYTHON, str(ROOT / 'tools' / 'testing' / 'bench_cases.py'), 'export', case,
                             str(folder)], capture_output=True, text=True)
    if export.returncode != 0:
        sys.exit(f'benchmark: cannot export {case}: {export.stderr[-500:]}')
    exported = json.loads(export.stdout.strip().splitlines()[-1])
    return exported['flops'], ','.join(str(s) for s in exported['shape'])


def measure_in_turns(case, commands, rounds):
    """Runs each engine's command ({engine: argv}, printing a JSON line of times) in turns for
    `rounds` rounds; returns a row per engine: the statistics over all its runs and its peak
    RSS, or a `note` when it failed (an engine that fails is not run again)."""
    rows = {engine: dict(case=case, engine=engine, times=[], peak_mb=0) for engine in commands}
    for _ in range(rounds):
        for engine, row in rows.items():
            if 'note' in row:
                continue  # failed in an earlier round
            result, peak_rss, status, err = run_measured(commands[engine])
            if status == 0 and result:
                row['times'] += result['times_ms']
                row['peak_mb'] = max(row['peak_mb'], peak_rss)
            else:
                row['note'] = 'does not import' if engine == 'opencv' and status == 3 else \
                    f'failed: {err.splitlines()[-1] if err else status}'
    for row in rows.values():
        times = row.pop('times')
        if 'note' not in row:
            row.update(summarise(times))
    return list(rows.values())


def training_rows(args, folder):
    """Training steps, native (dlwpt-bench --train) against Python, taking turns."""
    rows = []
    for name, (source, shape) in TRAINING_CASES.items():
        if args.cases and source not in args.cases:
            continue
        export_case(source, folder)
        samples = int(shape.split(',')[0])
        args_common = ['--shape', shape, '--runs', str(args.runs), '--warmup', str(args.warmup),
                       '--threads', str(args.threads), '--train']
        commands = {
            'native': [str(args.build / 'apps' / 'dlwpt-bench'), '--engine', 'native',
                       '--archive', str(folder / f'{source}.pt')] + args_common,
            'python': [PYTHON, str(ROOT / 'tools' / 'testing' / 'bench_python.py'),
                       str(folder / f'{source}.pt')] + args_common}
        for row in measure_in_turns(name, commands, args.rounds):
            if 'note' in row:
                sys.exit(f"benchmark: {name} {row['engine']} {row['note']}")
            row['note'] = f"{samples / row['median_ms'] * 1e3:.1f} samples/s"
            print(f"{name} {row['engine']}: {row['median_ms']:.1f} ms per step", flush=True)
            rows.append(row)
    return rows


def alternate(case, commands, rounds, before_each=None):
    """Runs the commands ({engine: (argv, result of stdout or None)}) in turns for `rounds`
    rounds; returns their rows (wall time of the whole process, peak RSS, the last note), or
    [] after printing why one failed."""
    times = {engine: [] for engine in commands}
    peaks = {engine: 0 for engine in commands}
    notes = {}
    for _ in range(max(1, rounds)):
        for engine, (command, note_of) in commands.items():
            if before_each:
                before_each()
            seconds, peak, status, err, stdout = timed_process(command)
            if status != 0:
                print(f'{case}: {engine} failed: {err[-500:]}')
                return []
            times[engine].append(seconds * 1e3)
            peaks[engine] = max(peaks[engine], peak)
            notes[engine] = note_of(stdout) if note_of else ''
    return [dict(case=case, engine=engine, peak_mb=peaks[engine], note=notes[engine],
                 **summarise(engine_times)) for engine, engine_times in times.items()]


def with_baseline(commands, baseline, app):
    """`commands` and, with a baseline build, its `app` run as the native one: engine 'baseline'."""
    if baseline:
        command, note = commands['native']
        commands['baseline'] = ([str(baseline / 'apps' / app)] + command[1:], note)
    return commands


def pipeline_rows(build, folder, dlwpt, threads, rounds, baseline=None):
    """ct-segment and tools/testing/ct_reference.py on the real CT with the book's checkpoints."""
    series = dlwpt / 'data' / 'p1ch4' / 'volumetric-dicom' / '2-LUNG 3.0  B70f-04083'
    weights = ROOT / 'pretrained'
    if not series.is_dir() or not (weights / 'segmentation.pt').exists():
        print('pipeline: skipped (needs the book data and tools/fetch.py --from it)')
        return []
    out = folder / 'pipeline'
    volume = out / 'volume.mhd'  # written by the first ct-segment run, read by Python's

    def cpp_note(_):
        found = next(out.glob('*/volume.mhd'))
        if not volume.exists():
            for part in found.parent.glob('volume.*'):
                shutil.copy(part, out / part.name)
        return f"{len((found.parent / 'candidates.csv').read_text().splitlines()) - 1} candidates"

    def python_note(stdout):
        count = re.search(r': (\d+) candidates', stdout).group(1)
        return f'{count} candidates'

    def clear_scan_folders():
        for scan in out.glob('*/'):
            shutil.rmtree(scan)

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cpp = [str(build / 'apps' / 'ct-segment'), str(series), '-o', str(out), '--volume',
           '--threads', str(threads), '--segmentation', str(weights / 'segmentation.pt'),
           '--classifier', str(weights / 'classifier.pt')]
    python = [PYTHON, str(ROOT / 'tools' / 'testing' / 'ct_reference.py'), str(volume),
              str(weights / 'segmentation.pt'), str(weights / 'classifier.pt'),
              str(folder / 'pipeline_python.pt'), '--threads', str(threads)]
    rows = alternate('ct_pipeline_real_99',
                     with_baseline({'native': (cpp, cpp_note), 'python': (python, python_note)},
                                   baseline, 'ct-segment'),
                     rounds, before_each=clear_scan_folders)
    if rows and rows[0]['note'] != rows[1]['note']:
        rows[0]['note'] += f" (Python: {rows[1]['note']}!)"
    return rows


def zebraify_rows(build, folder, threads, rounds, baseline=None):
    """The zebraify app on a 512x512 picture against tools/testing/zebraify_reference.py on the same
    pixels, the default (untrained) generator: time and peak memory of the whole process."""
    picture = folder / 'zebraify_512.png'
    images = folder / 'zebraify_512_images.pt'
    made = subprocess.run([PYTHON, str(ROOT / 'tools' / 'testing' / 'sample_image.py'), str(picture), '512',
                           '512', '--tensors', str(images)], capture_output=True, text=True)
    if made.returncode != 0:
        print(f'zebraify: cannot write the picture: {made.stderr[-500:]}')
        return []
    generator = folder / 'cyclegan_512.pt'
    cpp = [str(build / 'apps' / 'zebraify'), str(picture), '-o', str(folder / 'zebraify_512_out.png'),
           '--weights', str(generator), '--size', '512', '--threads', str(threads)]
    python = [PYTHON, str(ROOT / 'tools' / 'testing' / 'zebraify_reference.py'), str(generator), str(images),
              str(folder / 'zebraify_512_python.pt'), '--size', '512', '--threads', str(threads)]
    return alternate('zebraify_512', with_baseline({'native': (cpp, None), 'python': (python, None)},
                                                   baseline, 'zebraify'), rounds)


PEAK_RUNS = 8


def engine_precision(engine):
    return REDUCED_PRECISIONS.get(engine, 'float32')


def measure_peaks(args, precisions, peak_kernels):
    """Adds to `peak_kernels` the best GFLOP/s of each precision's kernels in PEAK_RUNS runs:
    the 1x1 convolution of the models' kernels, and for float32 also the BLAS product."""
    bench = str(args.build / 'apps' / 'dlwpt-bench')
    common = ['--runs', str(PEAK_RUNS), '--warmup', '2', '--threads', str(args.threads)]
    commands = {(p, 'oneDNN' if p != 'int8' else 'oneDNN int8'): [bench, '--engine', 'peak', '--precision', p]
                for p in precisions}
    if 'float32' in precisions:
        commands[('float32', 'BLAS')] = [bench, '--engine', 'matmul']
    for key, command in commands.items():
        result, _, status, err = run_measured(command + common)
        if status != 0:
            sys.exit(f'benchmark: {" ".join(command)} failed: {err}')
        gflops = 2 * 2048 ** 3 / (result['min_ms'] * 1e6)
        peak_kernels[key] = max(gflops, peak_kernels.get(key, 0))
        print(f'{key[0]} peak, {key[1]}: {gflops:.1f} GFLOP/s (best of {PEAK_RUNS})', flush=True)


def describe_peaks(peak_kernels):
    return ', '.join(f'{precision} {gflops:.0f} GFLOP/s ({kernel})'
                     for (precision, kernel), gflops in sorted(peak_kernels.items()))


def format_rows(rows, peaks):
    python_ms = {r['case']: r['median_ms'] for r in rows if r['engine'] == 'python' and 'median_ms' in r}
    lines = ['| case | engine | median | min-max | GFLOP/s | % of peak | peak RSS | vs Python eager |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    table = []
    for r in rows:
        if 'median_ms' not in r:
            lines.append(f"| {r['case']} | {r['engine']} | {r['note']} | | | | | |")
            table.append(r)
            continue
        gflops = r.get('flops', 0) / (r['median_ms'] * 1e6) if r.get('flops') else None
        speedup = python_ms.get(r['case'], 0) / r['median_ms'] if r['case'] in python_ms else None
        peak = peaks.get(engine_precision(r['engine']))
        r.update(gflops=gflops, percent_peak=100 * gflops / peak if gflops and peak else None,
                 speedup_vs_python=speedup)
        lines.append(
            f"| {r['case']} | {r['engine']} | {r['median_ms']:.1f} ms | "
            f"{r['min_ms']:.0f}-{r['max_ms']:.0f} | {gflops:.1f} | {r['percent_peak']:.0f}% | "
            if gflops else
            f"| {r['case']} | {r['engine']} | {r['median_ms']:.1f} ms | "
            f"{r['min_ms']:.0f}-{r['max_ms']:.0f} | | | ")
        lines[-1] += f"{r['peak_mb']:.0f} MB | " + (f'{speedup:.2f}x' if speedup else '') + \
            (f" {r['note']}" if r.get('note') else '') + ' |'
        table.append(r)
    return lines, table


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--build', type=pathlib.Path, default=ROOT / 'build')
    parser.add_argument('--out', type=pathlib.Path)
    parser.add_argument('--rounds', type=int, default=3, help='turns every engine takes')
    parser.add_argument('--runs', type=int, default=5, help='timed runs per engine and round')
    parser.add_argument('--pipeline-rounds', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--cases', nargs='*', help='only these cases (default: all)')
    parser.add_argument('--engines', nargs='*', default=list(ENGINES))
    parser.add_argument('--dlwpt', type=pathlib.Path, default=ROOT.parent / 'shared' / 'dlwpt')
    parser.add_argument('--no-pipeline', action='store_true')
    parser.add_argument('--no-training', action='store_true')
    parser.add_argument('--baseline', type=pathlib.Path,
                        help="another build (its apps/dlwpt-bench): adds the engine 'baseline', "
                             "its native engine, taking turns with the others")
    args = parser.parse_args()
    if args.baseline and 'baseline' not in args.engines:
        args.engines.append('baseline')
    folder = args.out or args.build / 'bench'
    folder.mkdir(parents=True, exist_ok=True)
    blas = use_app_kernels()  # every engine's process runs the same BLAS kernels

    peak_kernels = {}  # (precision, kernel) -> best GFLOP/s seen
    precisions = sorted({engine_precision(engine) for engine in args.engines})
    measure_peaks(args, precisions, peak_kernels)

    cases = args.cases or subprocess.run([PYTHON, str(ROOT / 'tools' / 'testing' / 'bench_cases.py'), 'list'],
                                         capture_output=True, text=True, check=True).stdout.split()
    rows = []
    for case in cases:
        flops, shape = export_case(case, folder)
        commands = {engine: engine_command(engine, args.build, folder, case, shape, args)
                    for engine in args.engines}
        for row in measure_in_turns(case, commands, args.rounds):
            row['flops'] = flops
            rows.append(row)
            print(f"{case} {row['engine']}: " + (f"{row['median_ms']:.1f} ms"
                                                 if 'median_ms' in row else row['note']), flush=True)
    if not args.no_training:
        rows += training_rows(args, folder)
    if not args.no_pipeline:
        rows += zebraify_rows(args.build, folder, args.threads, args.pipeline_rounds, args.baseline)
        rows += pipeline_rows(args.build, folder, args.dlwpt, args.threads, args.pipeline_rounds,
                              args.baseline)

    measure_peaks(args, precisions, peak_kernels)
    peaks = {precision: max(gflops for (p, _), gflops in peak_kernels.items() if p == precision)
             for precision in precisions}
    lines, table = format_rows(rows, peaks)
    header = (f'Peaks (2048^3, best of {2 * PEAK_RUNS} runs): {describe_peaks(peak_kernels)}; {args.threads} threads; '
              f'medians of {args.rounds} rounds x {args.runs} runs (each after {args.warmup} warm-up), '
              f'engines taking turns; pipeline: {args.pipeline_rounds} rounds; '
              f'OpenBLAS kernels: {blas}.')
    text = header + '\n\n' + '\n'.join(lines) + '\n'
    print('\n' + text)
    (folder / 'bench.md').write_text(text)
    with open(folder / 'bench.csv', 'w', newline='') as out:
        fields = ['case', 'engine', 'flops', 'median_ms', 'min_ms', 'max_ms', 'gflops',
                  'percent_peak', 'peak_mb', 'speedup_vs_python', 'note']
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(table)


if __name__ == '__main__':
    main()
