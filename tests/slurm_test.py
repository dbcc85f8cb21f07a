#!/usr/bin/env python3
"""ct-segment on a real single-node Slurm cluster (Debian's slurmctld, slurmd and munge,
started and stopped by tools/slurm-local.sh), submitted with the project's own
deploy/slurm/submit-ct-segment.sh: a job array of 3 tasks over 7 phantom scans (one corrupt)
and the merge as a dependent job give exactly the results of one local run; a rerun of the
array redoes nothing; a task killed with SIGKILL mid-scan is the only one whose scans a rerun
does; and the cluster's own overhead per task is measured.

Exits 77 (ctest: skipped) with the reason when Slurm or munge is not installed.

usage: slurm_test.py BUILD_DIR REFERENCE_DIR SOURCE_DIR
"""
import csv
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD, REFERENCES, SOURCE = (pathlib.Path(p).resolve() for p in sys.argv[1:4])
sys.argv[1:] = sys.argv[4:]
CT_SEGMENT = BUILD / 'apps' / 'ct-segment'
SLURM_LOCAL = SOURCE / 'tools' / 'slurm-local.sh'
SUBMIT = SOURCE / 'deploy' / 'slurm' / 'submit-ct-segment.sh'
TIME_SCALE = float(os.environ.get('DLWPT_TEST_TIME_SCALE', '1'))
JOB_TIMEOUT_S = 300 * TIME_SCALE
TASKS = 3
MODELS = f'--segmentation {REFERENCES / "unet_book.pt"} --classifier {REFERENCES / "luna.pt"}'


def run(command, timeout=120, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True, **kwargs)


def write_scans(folder):
    """Six phantom CTs (tools/testing/ct_phantom.py) and one whose data file is cut."""
    folder.mkdir()
    for i in range(6):
        run([sys.executable, str(SOURCE / 'tools' / 'testing' / 'ct_phantom.py'), str(folder / f'scan{i}.mhd'),
             '--slices', str(12 + 2 * i), '--size', '64', '--seed', str(i)])
    (folder / 'corrupt.raw').write_bytes((folder / 'scan0.raw').read_bytes()[:1000])
    (folder / 'corrupt.mhd').write_text((folder / 'scan0.mhd').read_text().replace('scan0.raw', 'corrupt.raw'))


def result_folders(output):
    return sorted(p.name for p in output.iterdir() if p.is_dir() and not p.name.startswith('.'))


def scan_table(output):
    """scans.csv of a merge, without the columns that differ between runs (shard, pids)."""
    with open(output / 'scans.csv', newline='') as file:
        return [(row['scan'], row['series_uid'], row['status'], row['candidates'], row['nodules'])
                for row in csv.DictReader(file)]


def planned_shards(output):
    """{scan key: shard} from the plan the array's tasks recorded."""
    plans = list((output / '.plans').glob('*.tsv'))
    assert len(plans) == 1, plans
    rows = plans[0].read_text().splitlines()[1:]
    return {row.split('\t')[0]: int(row.split('\t')[1]) for row in rows}


def task_processes(array_job, task):
    """pids of the ct-segment processes of one array task (from their environment)."""
    wanted = {f'SLURM_ARRAY_JOB_ID={array_job}'.encode(), f'SLURM_ARRAY_TASK_ID={task}'.encode()}
    pids = []
    for proc in pathlib.Path('/proc').iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / 'exe').endswith('/ct-segment') and \
                    wanted <= set((proc / 'environ').read_bytes().split(b'\0')):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


class SlurmCtSegmentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = pathlib.Path(tempfile.mkdtemp(prefix='dlwpt-slurm-'))
        # The cluster's sockets, keys and spool are in a folder every daemon user can enter.
        os.chmod(cls.folder, 0o755)
        cls.cluster = cls.folder / 'cluster'
        started = subprocess.run([str(SLURM_LOCAL), 'start', str(cls.cluster)], capture_output=True, text=True,
                                 timeout=120)
        if started.returncode != 0:
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise RuntimeError(f'the local Slurm cluster did not start:\n{started.stderr}')
        cls.env = {**os.environ, 'SLURM_CONF': str(cls.cluster / 'slurm.conf'), 'CT_SEGMENT': str(CT_SEGMENT),
                   'CT_SEGMENT_ARGS': f'{MODELS}',
                   'CT_SEGMENT_SBATCH_ARGS': f'--chdir={cls.folder / "logs"} --cpus-per-task=1'}
        (cls.folder / 'logs').mkdir()
        cls.scans = cls.folder / 'scans'
        write_scans(cls.scans)
        # The reference: one local run of every scan, merged.
        cls.local = cls.folder / 'local'
        local = subprocess.run([str(CT_SEGMENT), *MODELS.split(), '--threads', '1', str(cls.scans), '-o',
                                str(cls.local)], capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        assert local.returncode == 1, f'one scan is corrupt, so the exit status is 1:\n{local.stderr}'
        subprocess.run([str(CT_SEGMENT), '--merge', str(cls.local)], capture_output=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([str(SLURM_LOCAL), 'stop', str(cls.cluster)], capture_output=True, timeout=120)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def squeue(self, *jobs):
        return run(['timeout', '20', 'squeue', '-h', '-o', '%i', '-j', ','.join(jobs)], env=self.env).stdout.split()

    def wait_for(self, *jobs):
        """Polls the queue (sbatch --wait polls every 2-10 s) until the jobs have left it."""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while self.squeue(*jobs):
            self.assertLess(time.monotonic(), deadline, f'jobs {jobs} did not end')
            time.sleep(0.1)

    def submit(self, output):
        ids = run([str(SUBMIT), str(TASKS), str(output), str(self.scans)], env=self.env).stdout.split()
        self.assertEqual(len(ids), 2, ids)
        return ids

    def task_logs(self, array_job):
        return {task: (self.folder / 'logs' / f'ct-segment-{array_job}_{task}.log').read_text()
                for task in range(TASKS)}

    def merge_log(self, merge_job):
        return (self.folder / 'logs' / f'ct-segment-merge-{merge_job}.log').read_text()

    def assert_equal_to_the_local_run(self, output):
        self.assertEqual(result_folders(output), result_folders(self.local))
        self.assertEqual((output / 'candidates.csv').read_text(), (self.local / 'candidates.csv').read_text())
        self.assertEqual(scan_table(output), scan_table(self.local))
        for name in result_folders(self.local):
            self.assertEqual((output / name / 'mask.raw').read_bytes(), (self.local / name / 'mask.raw').read_bytes(),
                             name)
        print(f'{output.name}: {len(result_folders(output))} scans, candidates.csv, scans.csv and masks equal '
              f'to the local run')

    def test_1_array_and_merge_equal_one_local_run_and_a_rerun_redoes_nothing(self):
        output = self.folder / 'array'
        array, merge = self.submit(output)
        self.wait_for(array, merge)
        merged = self.merge_log(merge)
        print(merged)
        self.assertIn('7 scans: 6 done, 1 failed, 0 missing', merged)
        self.assertIn("corrupt.raw' is truncated", merged)
        self.assert_equal_to_the_local_run(output)
        logs = self.task_logs(array)
        for task, log in logs.items():
            self.assertIn(f'(SLURM_ARRAY_TASK_ID={task})', log)
        self.assertEqual(sum(log.count(f' -> {output}/') for log in logs.values()), 6)

        times = {name: (output / name / 'candidates.json').stat().st_mtime_ns for name in result_folders(output)}
        array, merge = self.submit(output)
        self.wait_for(array, merge)
        logs = self.task_logs(array)
        analysed = sum(log.count(f' -> {output}/') for log in logs.values())
        skipped = sum(log.count('skipped (complete)') for log in logs.values())
        print(f'rerun: {analysed} scans analysed, {skipped} skipped as complete')
        self.assertEqual(analysed, 0)
        self.assertEqual(skipped, 6)
        self.assertEqual(times, {name: (output / name / 'candidates.json').stat().st_mtime_ns
                                 for name in result_folders(output)})
        self.assertIn('7 scans: 6 done, 1 failed, 0 missing', self.merge_log(merge))

    def test_2_a_killed_task_is_the_only_one_a_rerun_redoes(self):
        output = self.folder / 'killed'
        array, merge = self.submit(output)
        # The task with the most scans, killed as its second scan starts.
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not (output / '.plans').is_dir() or not list((output / '.plans').glob('*.tsv')):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        shards = planned_shards(output)
        victim = max(range(TASKS), key=lambda task: list(shards.values()).count(task))
        log = self.folder / 'logs' / f'ct-segment-{array}_{victim}.log'
        while not (log.exists() and 'scan 2/' in log.read_text()):
            self.assertLess(time.monotonic(), deadline, 'the task never reached its second scan')
            time.sleep(0.02)
        pids = task_processes(array, victim)
        self.assertEqual(len(pids), 1, f'the ct-segment of task {victim}')
        os.kill(pids[0], signal.SIGKILL)
        self.wait_for(array, merge)
        done_before = set(result_folders(output))
        unfinished = {key for key, shard in shards.items() if shard == victim and key not in done_before
                      and key != 'corrupt'}
        print(f'task {victim} of {shards}: killed with {len(unfinished)} scans unfinished ({sorted(unfinished)})')
        self.assertIn('missing', self.merge_log(merge))
        self.assertGreater(len(unfinished), 0)

        array, merge = self.submit(output)
        self.wait_for(array, merge)
        logs = self.task_logs(array)
        redone = {name for name in shards if any(f' -> {output}/{name}\n' in log for log in logs.values())}
        print(f'rerun redid {sorted(redone)}')
        self.assertEqual(redone, unfinished)
        self.assertIn('7 scans: 6 done, 1 failed, 0 missing', self.merge_log(merge))
        self.assert_equal_to_the_local_run(output)
        leftovers = [p.name for p in output.iterdir() if '.partial-' in p.name]
        self.assertEqual(leftovers, [], 'partial folders of the killed task remain')

    def test_3_slurm_overhead_per_task(self):
        """An array of tasks that do nothing, from sbatch to an empty queue."""
        rounds = []
        for _ in range(3):
            start = time.monotonic()
            job = run(['sbatch', '--parsable', f'--array=0-{TASKS - 1}', '--cpus-per-task=1',
                       f'--chdir={self.folder / "logs"}', '--output=/dev/null', '--wrap', 'true'],
                      env=self.env).stdout.strip()
            self.wait_for(job)
            rounds.append(time.monotonic() - start)
        per_task = sorted(rounds)[1] / TASKS
        print(f'{TASKS} empty tasks, sbatch to an empty queue: {", ".join(f"{r:.2f}" for r in rounds)} s; '
              f'median per task {per_task:.2f} s (2 cores: two tasks at a time)')
        self.assertLess(per_task, 2.0 * TIME_SCALE)


def main():
    missing = [tool for tool in ('slurmctld', 'slurmd', 'sbatch', 'munged') if shutil.which(tool) is None
               and not pathlib.Path('/usr/sbin', tool).exists()]
    if missing:
        print(f'skipped: {", ".join(missing)} not installed (tools/dev.sh setup installs Slurm and munge)')
        sys.exit(77)
    unittest.main(verbosity=2)


if __name__ == '__main__':
    main()
