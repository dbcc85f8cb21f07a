#!/usr/bin/env python3
"""The throughput model of batch CT on a cluster, from measurements on this machine: ct-segment
runs on one scan (by default the book's real 99-slice DICOM series) several times, each into a
fresh output folder, and the script reports the median time per scan, the bytes it read and
wrote (the process's rchar/wchar, models included, and the sizes of its input and output
files; the filesystem model counts the scan's files once, since the node's page cache serves
the readers' repeated passes), then what N nodes would give for LUNA16 and for a screening archive, and the node
count at which a shared filesystem of a given bandwidth becomes the limit. Prints Markdown.

usage: ct_cluster_model.py [--build build] [--scan DICOM_FOLDER_OR_MHD] [--threads 2]
                           [--rounds 3] [--fs-gbps 1.0]
"""
import argparse
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOOK_CT = ROOT.parent / 'shared' / 'dlwpt' / 'data' / 'p1ch4' / 'volumetric-dicom' / '2-LUNG 3.0  B70f-04083'
# Archive sizes, in scans: LUNA16's (its ten subsets), and about the number of CT series of a
# lung screening trial's archive such as NLST's.
ARCHIVES = {'LUNA16': 888, 'screening archive': 75000}


def tree_bytes(path):
    path = pathlib.Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def scan_input_bytes(scan):
    scan = pathlib.Path(scan)
    if scan.is_dir():
        return tree_bytes(scan)
    data = [scan]
    for line in scan.read_text(errors='replace').splitlines():
        if line.startswith('ElementDataFile') and 'LOCAL' not in line:
            data.append(scan.parent / line.split('=', 1)[1].strip())
    return sum(p.stat().st_size for p in data)


def run_once(ct_segment, scan, threads, output, extra):
    """One run in a shell that prints its own I/O counters after its child ends (they include
    the reaped child's)."""
    command = shlex.join([str(ct_segment), '--threads', str(threads), str(scan), '-o', str(output), *extra])
    start = time.monotonic()
    result = subprocess.run(['sh', '-c', f'{command} >/dev/null 2>&1; status=$?; cat /proc/$$/io; exit $status'],
                            capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f'ct-segment failed (exit {result.returncode}): {command}')
    counters = dict(line.split(': ') for line in result.stdout.splitlines())
    return seconds, int(counters['rchar']), int(counters['wchar'])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--build', type=pathlib.Path, default=ROOT / 'build')
    parser.add_argument('--scan', type=pathlib.Path, default=BOOK_CT)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--fs-gbps', type=float, default=1.0,
                        help='shared filesystem bandwidth in GB/s for the scaling limit (default 1.0)')
    parser.add_argument('extra', nargs='*', help='more ct-segment flags (after --)')
    args = parser.parse_args()
    if not args.scan.exists():
        sys.exit(f'no scan at {args.scan} (the book\'s data folder is missing: give --scan)')
    ct_segment = args.build / 'apps' / 'ct-segment'
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            output = pathlib.Path(folder) / f'run{round_}'
            seconds, read, written = run_once(ct_segment, args.scan, args.threads, output, args.extra)
            runs.append((seconds, read, written, tree_bytes(output)))
            print(f'round {round_ + 1}: {seconds:.1f} s, read {read / 1e6:.1f} MB, wrote {written / 1e6:.1f} MB',
                  file=sys.stderr)
    seconds = statistics.median(r[0] for r in runs)
    read = statistics.median(r[1] for r in runs)
    written = statistics.median(r[2] for r in runs)
    outputs = statistics.median(r[3] for r in runs)
    inputs = scan_input_bytes(args.scan)
    per_hour = 3600 / seconds
    # What crosses the network to a shared filesystem: the scan's files once (the readers open
    # each file several times, but repeats come from the node's page cache) and what is written.
    moved = inputs + written
    # Nodes at which the shared filesystem, not the CPUs, sets the pace.
    fs_limit = args.fs_gbps * 1e9 / (moved / seconds)

    print(f'Scan: {args.scan.name}, {inputs / 1e6:.1f} MB; ct-segment --threads {args.threads} '
          f'{" ".join(args.extra)}, median of {args.rounds}\n')
    print('| per scan | figure |\n| --- | --- |')
    print(f'| time | {seconds:.1f} s ({per_hour:.0f} scans per hour per node of {args.threads} cores) |')
    print(f'| scan files | {inputs / 1e6:.1f} MB |')
    print(f'| bytes read by the process (rchar: every pass over the files, model archives) | {read / 1e6:.1f} MB |')
    print(f'| written (wchar) | {written / 1e6:.1f} MB (result files {outputs / 1e6:.1f} MB) |')
    print(f'| shared filesystem traffic per node (scan files once, writes) | {moved / seconds / 1e6:.2f} MB/s |')
    print(f'\n| nodes | {" | ".join(f"{name} ({count} scans)" for name, count in ARCHIVES.items())} |')
    print('| --- |' + ' --- |' * len(ARCHIVES))
    for nodes in (1, 10, 100, 1000):
        limited = nodes > fs_limit
        effective = min(nodes, fs_limit)
        cells = [f'{count * seconds / effective / 3600:.1f} h' + (' (filesystem-bound)' if limited else '')
                 for count in ARCHIVES.values()]
        print(f'| {nodes} | {" | ".join(cells)} |')
    print(f'\nA shared filesystem of {args.fs_gbps:g} GB/s becomes the limit at about {fs_limit:.0f} such nodes.')


if __name__ == '__main__':
    main()
