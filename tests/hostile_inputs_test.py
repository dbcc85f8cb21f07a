#!/usr/bin/env python3
"""Bad input across the apps, as a careless or hostile user gives it.

Every case must end with exit status 1 (some inputs failed, the others done) or 2 (nothing
could be done), a message on stderr whose line names the problem, no signal, within 10 s of
wall time (40 s for an input accepted and worked on) and, when the input is refused, 1 GB of
peak memory. Besides the named cases, every
committed fuzz regression input (tests/fuzz/regressions/) is given to the app that reads such
files; those inputs may also be valid (exit 0), but never crash, hang or exhaust memory.

In a sanitizer build the apps run several times slower and their shadow memory counts in their
peak: ctest then sets DLWPT_TEST_TIME_SCALE and DLWPT_TEST_MEMORY_SCALE, which multiply both
bounds.

usage: hostile_inputs_test.py BUILD_DIR REFERENCE_DIR SOURCE_DIR
"""
import fcntl
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tools' / 'testing'))
from bounded import wait_bounded  # noqa: E402

TIME_LIMIT_S = 10.0 * float(os.environ.get("DLWPT_TEST_TIME_SCALE", "1"))
# An accepted input does the real work (a valid 64-megapixel picture is decoded and resized):
# bounded too, but not held to the cost of a refusal. It took 19 s on a loaded 2-core machine.
ACCEPTED_TIME_LIMIT_S = 4 * TIME_LIMIT_S
MEMORY_LIMIT_MB = 1024.0 * float(os.environ.get("DLWPT_TEST_MEMORY_SCALE", "1"))


def run(argv, cwd, env=None):
    """Runs argv (with `env` added to the environment); returns (status, signal, seconds, peak
    RSS in MB, stderr)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err, env={**os.environ, **(env or {})})
        # A hung program is stopped well after the limit, so that the case fails, not the run.
        status, usage = wait_bounded(process, start + 6 * TIME_LIMIT_S)
        seconds = time.monotonic() - start
        err.seek(0)
        text = err.read().decode(errors="replace")
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    return code, killed, seconds, usage.ru_maxrss / 1024.0, text


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, argv, cwd, expected_status=(1, 2), expected_text=None, env=None):
        code, killed, seconds, rss, text = run(argv, cwd, env)
        problems = []
        if killed:
            problems.append(f"killed by signal {killed} ({signal.Signals(killed).name})")
        elif code not in expected_status:
            problems.append(f"exit status {code}, expected {expected_status}")
        time_limit = ACCEPTED_TIME_LIMIT_S if code == 0 else TIME_LIMIT_S
        if seconds > time_limit:
            problems.append(f"took {seconds:.1f} s (limit {time_limit} s)")
        # The bound is for refused input; an accepted large image may need more, by design.
        if code != 0 and rss > MEMORY_LIMIT_MB:
            problems.append(f"peak memory {rss:.0f} MB (limit {MEMORY_LIMIT_MB:.0f} MB)")
        program = pathlib.Path(argv[0]).name
        lines = [line for line in text.splitlines() if line.startswith(program + ":")]
        if code not in (0, None) and not lines:
            problems.append(f"no '{program}: ...' message on stderr")
        if expected_text and expected_text not in text:
            problems.append(f"stderr lacks {expected_text!r}")
        failures = [line for line in lines if "FAILED" in line or "skipped" in line]
        message = (failures or lines or text.strip().splitlines() or [""])[-1]
        verdict = "FAIL" if problems else "ok"
        print(f"{verdict:4} {name:58} exit {code if code is not None else '-':>2} "
              f"{seconds:5.2f} s {rss:6.0f} MB  {message[:110]}")
        for problem in problems:
            print(f"       {problem}\n       $ {shlex.join(argv)}\n       {text[-600:]}")
        if problems:
            self.failed += 1
        else:
            self.passed += 1


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def main():
    build, references, source = (pathlib.Path(a).resolve() for a in sys.argv[1:4])
    apps = build / "apps"
    zebraify, ct_segment, train = str(apps / "zebraify"), str(apps / "ct-segment"), str(apps / "train")
    unet, luna = str(references / "unet_book.pt"), str(references / "luna.pt")
    small_generator = str(references / "cyclegan_small.pt")
    checker = Checker()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        out = str(tmp / "out")
        garbage = write(tmp / "garbage.jpg", os.urandom(5000))
        empty = write(tmp / "empty.png", b"")
        not_archive = write(tmp / "weights.pt", os.urandom(3000))
        zip_junk = write(tmp / "junk.pt", b"PK\x03\x04" + os.urandom(2000))
        bad_mhd = write(tmp / "bad.mhd", "ObjectType = Image\nNDims = 3\nDimSize = 4 4\n")
        self_list = write(tmp / "self.txt", f"@{tmp / 'self.txt'}\n")
        csv = write(tmp / "candidates.csv", "seriesuid,coordX\n")
        (tmp / "folder.png").mkdir()
        segment = [ct_segment, "--segmentation", unet, "--classifier", luna, "--threads", "1"]
        zebra = [zebraify, "--weights", small_generator, "--threads", "1"]

        c = checker.check
        c("zebraify: random bytes named .jpg", zebra + [garbage, "-o", out], tmp, (1,), "garbage.jpg")
        c("zebraify: empty file", zebra + [empty, "-o", out], tmp, (1,), "is empty")
        c("zebraify: a folder named .png", zebra + [str(tmp / "folder.png"), "-o", out], tmp, (1, 2))
        c("zebraify: missing input", zebra + [str(tmp / "none.jpg"), "-o", out], tmp, (1,), "does not exist")
        c("zebraify: random bytes as weights", [zebraify, "--weights", not_archive, garbage, "-o", out],
          tmp, (2,), "weights.pt")
        c("zebraify: a zip that is no archive", [zebraify, "--weights", zip_junk, garbage, "-o", out],
          tmp, (2,), "junk.pt")
        c("zebraify: a U-Net as the generator", [zebraify, "--weights", unet, garbage, "-o", out],
          tmp, (2,), "ResNetGenerator")
        c("zebraify: --threads 100000", zebra + ["--threads", "100000", garbage, "-o", out], tmp, (2,),
          "--threads 100000")
        c("zebraify: --size -5", zebra + ["--size", "-5", garbage, "-o", out], tmp, (2,), "--size")
        c("zebraify: unknown option", zebra + ["--frobnicate", garbage], tmp, (2,), "frobnicate")
        # A value cxxopts cannot convert is named with its option.
        c("zebraify: --size nan", zebra + ["--size", "nan", garbage, "-o", out], tmp, (2,), "'--size nan'")
        c("zebraify: --seed=-1", zebra + ["--seed=-1", garbage, "-o", out], tmp, (2,), "'--seed=-1'")
        c("zebraify: -o with another image format", zebra + [garbage, "-o", str(tmp / "o.bmp")], tmp, (2,),
          "are written as .png, .jpg or .jpeg")
        c("zebraify: -o ''", zebra + [garbage, "-o", ""], tmp, (2,), "--output is empty")
        c("zebraify: int8 with an unreadable calibration picture",
          zebra + ["--precision", "int8", "--calibrate-on", garbage, garbage, "-o", out], tmp, (2,), garbage)
        accuracy = str(apps / "dlwpt-accuracy")
        c("dlwpt-accuracy: nothing to measure", [accuracy], tmp, (2,), "give --pictures, --scan or both")
        c("dlwpt-accuracy: float32 as a reduced precision", [accuracy, "--precisions", "float32", "--pictures", garbage],
          tmp, (2,), "float32 is the reference")
        c("dlwpt-accuracy: a corrupt picture", [accuracy, "--pictures", garbage], tmp, (2,), garbage)
        bench = str(apps / "dlwpt-bench")
        c("dlwpt-bench: the peak at an unknown precision", [bench, "--engine", "peak", "--precision", "float16"],
          tmp, (2,), "precision 'float16' is none of")
        # Training steps time the model as written: the inference preparation would refuse them.
        c("dlwpt-bench: a LunaModel training step", [bench, "--engine", "native", "--train", "--archive", luna,
                                                     "--shape", "2,1,32,48,48", "--runs", "1", "--warmup", "0",
                                                     "--threads", "1"], tmp, (0,))
        c("dlwpt-bench: a model engine without an archive", [bench, "--engine", "native"], tmp, (2,),
          "--archive is needed")
        c("ct-segment: --precision int8", segment + ["--precision", "int8", bad_mhd, "-o", out], tmp, (2,),
          "ct-segment runs float32 or bfloat16")
        c("dlwpt-parity: --tolerance -1", [str(apps / "dlwpt-parity"), "--tolerance", "-1", str(references)],
          tmp, (2,), "--tolerance must be above 0")
        c("ct-segment: a header without data", segment + [bad_mhd, "-o", out], tmp, (1,), "bad.mhd")
        c("ct-segment: list that includes itself", segment + ["@" + self_list, "-o", out], tmp, (2,),
          "includes itself")
        c("ct-segment: --threads 100000", segment + ["--threads", "100000", bad_mhd, "-o", out], tmp, (2,),
          "--threads 100000")
        c("ct-segment: a LunaModel as the U-Net", [ct_segment, "--segmentation", luna, "--classifier", luna,
                                                   bad_mhd, "-o", out], tmp, (2,), "not a UNetWrapper")
        c("ct-segment: annotations without columns", segment + ["--annotations", csv, bad_mhd, "-o", out],
          tmp, (2,), "candidates.csv")
        c("ct-segment: output inside a file", segment + [bad_mhd, "-o", empty + "/out"], tmp, (2,))
        # A pipe would block its reader for ever, /dev/zero would feed it without end.
        fifo = tmp / "pipe.mhd"
        os.mkfifo(fifo)
        c("ct-segment: a named pipe as a scan", segment + [str(fifo), "-o", out], tmp, (1,), "not a regular file")
        c("ct-segment: a named pipe as a list", segment + ["@" + str(fifo), "-o", out], tmp, (2,), "pipe.mhd")
        c("ct-segment: /dev/zero as annotations", segment + ["--annotations", "/dev/zero", bad_mhd, "-o", out],
          tmp, (2,), "not a regular file")
        c("zebraify: a named pipe as a picture", zebra + [str(fifo), "-o", out], tmp, (1,), "not a regular file")
        # Shards and their merge (apps/ct_segment/sharding.h, merge.h).
        c("ct-segment: shard 3 of 3", segment + ["--shard", "3/3", bad_mhd, "-o", out], tmp, (2,),
          "indices count from 0 to 2")
        c("ct-segment: an array task ID below its minimum", segment + [bad_mhd, "-o", out], tmp, (2,),
          "is below SLURM_ARRAY_TASK_MIN",
          env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"})
        (tmp / "merge_run" / ".plans").mkdir(parents=True)
        os.mkfifo(tmp / "merge_run" / ".plans" / "pipe.tsv")
        c("ct-segment --merge: a named pipe as a plan", [ct_segment, "--merge", str(tmp / "merge_run")], tmp, (2,),
          "not a regular file")
        c("ct-segment --merge: with scans", [ct_segment, "--merge", str(tmp / "merge_run"), bad_mhd], tmp, (2,),
          "scans given with --merge")
        c("ct-segment: precision float16", segment + ["--precision", "float16", bad_mhd, "-o", out], tmp, (2,),
          "precision 'float16' is none of")
        # Spacings ITK takes but no scan has; the scan is otherwise fine (16 x 16 x 8 voxels).
        for name, spacing, says in (("zero", "0 1 1", "spacing of 0"), ("nan", "nan 1 1", "spacing_nan.mha"),
                                    ("huge", "1e300 1 1", "each must be positive and below")):
            voxels = b"\x00\x00" * (16 * 16 * 8)
            scan = write(tmp / f"spacing_{name}.mha", f"ObjectType = Image\nNDims = 3\nDimSize = 16 16 8\n"
                         f"ElementSpacing = {spacing}\nElementType = MET_SHORT\n"
                         f"ElementDataFile = LOCAL\n".encode() + voxels)
            c(f"ct-segment: voxel spacing {spacing}", segment + [scan, "-o", out], tmp, (1,), says)
        four_d = write(tmp / "four_d.mha", "ObjectType = Image\nNDims = 4\nDimSize = 16 16 8 1\n"
                       "Offset = nan 0 0 0\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n" + "\0" * 2048)
        c("ct-segment: a 4D scan with a NaN offset", segment + [four_d, "-o", out], tmp, (1,),
          "is 4D; a CT volume must be 3D")
        c("train: --finetune-depth without --finetune", [train, "--candidates", csv, "--scans", str(tmp),
                                                          "-o", out, "--finetune-depth", "2"], tmp, (2,),
          "--finetune-depth needs --finetune")
        c("train: --workers 100000", [train, "--candidates", csv, "--scans", str(tmp), "-o", out,
                                      "--workers", "100000"], tmp, (2,), "--workers")
        c("train: --epoch-size 2^63-1", [train, "--candidates", csv, "--scans", str(tmp), "-o", out,
                                         "--epoch-size", "9223372036854775807"], tmp, (2,), "--epoch-size")
        c("train: --momentum 1e300", [train, "--candidates", csv, "--scans", str(tmp), "-o", out,
                                      "--momentum", "1e300"], tmp, (2,), "--momentum must be in [0, 1)")
        run_folder = tmp / "run"
        run_folder.mkdir()
        with open(run_folder / ".train.lock", "w") as held:  # another training run holds the folder
            fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            c("train: a run folder in use", [train, "--candidates", csv, "--scans", str(tmp), "-o",
                                             str(run_folder)], tmp, (2,), "is in use by")
        c("train: candidates without columns", [train, "--candidates", csv, "--scans", str(tmp), "-o", out],
          tmp, (2,), "candidates.csv")

        # Every committed fuzz regression input, through the app that reads such files.
        corpora = source / "tests" / "fuzz" / "regressions"
        readers = {
            "image_fuzzer": lambda f: zebra + [str(f), "-o", str(tmp / "z" / (f.name + ".png"))],
            "metaimage_fuzzer": lambda f: segment + [str(tmp / "scan.mha"), "-o", out],
            "archive_fuzzer": lambda f: [zebraify, "--weights", str(f), garbage, "-o", out],
            "csv_fuzzer": lambda f: segment + ["--annotations", str(f), bad_mhd, "-o", out],
        }
        for corpus, argv_for in readers.items():
            for path in sorted((corpora / corpus).glob("*")) if (corpora / corpus).is_dir() else []:
                if corpus == "metaimage_fuzzer":
                    (tmp / "scan.mha").write_bytes(path.read_bytes())
                c(f"{corpus}/{path.name}", argv_for(path), tmp, (0, 1, 2))
    print(f"{checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
