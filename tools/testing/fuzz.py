#!/usr/bin/env python3
"""Runs every libFuzzer target of a fuzz build (tools/dev.sh fuzz) for a bounded time.

Each target starts from its corpus in <build>/corpus/<name>, seeded with the committed inputs
of tests/fuzz/regressions/<name>; inputs that crash, leak or time out are written to
<build>/fuzz-artifacts/<name>/ and fail the run. Prints a table of executions per target.
"""
import argparse
import concurrent.futures
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bounded import wait_bounded  # noqa: E402


def run_target(binary, corpus, artifacts, seconds, runs, log_path):
    """Runs one target; returns (exit status, executions, wall seconds, CPU seconds)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [str(binary), str(corpus), f"-max_total_time={seconds}", f"-runs={runs}", "-timeout=10",
               "-rss_limit_mb=2048", "-malloc_limit_mb=2048", "-print_final_stats=1",
               f"-artifact_prefix={artifacts}/"]
    start = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # The fuzzer stops itself after `seconds` of wall time; the margin covers its start and
        # a last input. Its CPU time is what counts when other work shares the cores.
        wait_status, usage = wait_bounded(process, start + seconds + 300)
        status = os.waitstatus_to_exitcode(wait_status)
    elapsed = time.monotonic() - start
    text = pathlib.Path(log_path).read_text(errors="replace")
    executions = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    return status, int(executions[-1]) if executions else 0, elapsed, usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", required=True, type=pathlib.Path)
    parser.add_argument("--source", required=True, type=pathlib.Path)
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--runs", type=int, default=-1,
                        help="executions after which a target stops before its time (-1: none)")
    parser.add_argument("--only", help="run only this target (csv, image, archive, metaimage, dicom)")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once (one core each)")
    args = parser.parse_args()

    targets = sorted(p for p in (args.build / "tests" / "fuzz").glob("*_fuzzer") if p.is_file())
    if args.only:  # "image" is image_fuzzer, not also metaimage_fuzzer
        targets = [t for t in targets if t.name in (args.only, args.only + "_fuzzer")]
    if not targets:
        sys.exit(f"no fuzz targets in {args.build}/tests/fuzz")

    def fuzz(binary):
        corpus = args.build / "corpus" / binary.name
        corpus.mkdir(parents=True, exist_ok=True)
        seeds = args.source / "tests" / "fuzz" / "regressions" / binary.name
        for seed in seeds.glob("*") if seeds.is_dir() else []:
            shutil.copy(seed, corpus / seed.name)
        log_path = args.build / f"fuzz-{binary.name}.log"
        print(f"fuzzing {binary.name} for {args.seconds} s (log {log_path})", flush=True)
        status, executions, elapsed, cpu = run_target(binary, corpus,
                                                 args.build / "fuzz-artifacts" / binary.name,
                                                 args.seconds, args.runs, log_path)
        if status != 0:
            print(pathlib.Path(log_path).read_text(errors="replace")[-3000:], flush=True)
        return binary.name, executions, elapsed, cpu, status

    # Each target is one process on one core: --jobs of them run side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(fuzz, targets))
    failed = [name for name, _, _, _, status in rows if status != 0]
    print(f"\n{'target':<20} {'executions':>12} {'seconds':>8} {'CPU s':>8} {'exec/s':>8}  result")
    for name, executions, elapsed, cpu, status in rows:
        print(f"{name:<20} {executions:>12} {elapsed:>8.0f} {cpu:>8.0f} {executions / max(elapsed, 1e-9):>8.0f}  "
              f"{'ok' if status == 0 else 'FAILED (exit %d)' % status}")
    if failed:
        sys.exit(f"fuzzing found defects in: {', '.join(failed)} (inputs in {args.build}/fuzz-artifacts)")


if __name__ == "__main__":
    main()
