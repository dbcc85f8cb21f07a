#!/usr/bin/env python3
"""dlwpt-serve under load against the servers a user would run instead, in one run, on
127.0.0.1, each load bounded in time:

- LunaModel chunks: the book's client request (multipart meta + blob) to dlwpt-serve's
  /predict and to the book's Flask server (tools/testing/book_flask_server.py) under gunicorn,
  one worker per core;
- CycleGAN pictures (256 x 256 JPEG): PUT /image to dlwpt-serve and to the port of the book's
  request-batching server (tools/testing/book_batching_server.py, its constants: queue 3,
  batches of 2, 1 s wait);
- U-Net slices (7 x 512 x 512 float32, 7 MiB) by the v2 binary extension to dlwpt-serve.

Load comes from wrk (a Lua script posts the same body on every connection, and a connection
that got a 503 waits a second before its next request, as clients honouring Retry-After do) at
each --connections count: requests answered 200 per second, latency percentiles (of all answers),
answers by status, socket errors, and each server's peak resident memory. The offline native
throughput of the same model (dlwpt-bench, one sample per run, measured just before and just
after the model's dlwpt-serve runs, the faster of the two) is the ceiling. The
same archives serve every engine (random weights: speed does not depend on them).

--soak N instead sends N LunaModel requests at 64 connections to dlwpt-serve and samples its
resident memory, to show whether it stays flat; --overload S offers 256 connections for S
seconds to a queue of 64 with a 1 s deadline and reports the statuses.

usage: bench_serve.py [--build build] [--seconds 10] [--min-answers 60] [--connections 1 8 64 256] [--out DIR]
"""
import argparse
import json
import math
import os
import pathlib
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools' / 'testing'))
from bounded import wait_bounded  # noqa: E402

PYTHON = '/usr/bin/python3'
CORES = os.cpu_count() or 1

WRK_SCRIPT = r'''
local body_file = os.getenv("BENCH_BODY")
local file = assert(io.open(body_file, "rb"))
wrk.body = file:read("*a")
file:close()
wrk.method = os.getenv("BENCH_METHOD")
for header in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(header, "^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
threads = {}
counts = {}
function setup(thread) table.insert(threads, thread) end
-- Clients back off for a second after a 503 (dlwpt-serve says Retry-After: 1). wrk's hooks do
-- not say which connection answered, so every 503 delays one next request of this thread: a
-- single flag would let two 503s before the next request pause only one connection.
backoffs = 0
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 then backoffs = backoffs + 1 end
end
function delay()
  if backoffs == 0 then return 0 end
  backoffs = backoffs - 1
  return 1000
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local statuses = {}
  for status, n in pairs(total) do table.insert(statuses, string.format('"%d": %d', status, n)) end
  io.write(string.format('RESULT {"duration_us": %d, "statuses": {%s}, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.duration, table.concat(statuses, ", "), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
'''


class Process:
    """A server started in its own process group, stopped by its pid; peak memory from /proc."""

    def __init__(self, command, ready_text, env=None, cwd=None, timeout_s=120):
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})}, cwd=cwd,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        self.output = ''
        while ready_text not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f'{command[0]} did not start:\n{self.output}')
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:  # raw reads: a buffered readline would hide lines from select
                self.output += os.read(self.process.stdout.fileno(), 65536).decode(errors='replace')

    def pids(self):
        """The server and its children (gunicorn's workers)."""
        found = [self.process.pid]
        for task in pathlib.Path('/proc').iterdir():
            try:
                if task.name.isdigit() and int((task / 'stat').read_text().split(') ')[1].split()[1]) == self.process.pid:
                    found.append(int(task.name))
            except (OSError, IndexError, ValueError):
                pass
        return found

    def memory_mb(self, field):
        total = 0
        for pid in self.pids():
            try:
                for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
                    if line.startswith(field + ':'):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        status, _ = wait_bounded(self.process, time.monotonic() + 30)
        return status


def wrk(url, method, body, headers, connections, seconds, script):
    env = {**os.environ, 'BENCH_BODY': str(body), 'BENCH_METHOD': method,
           'BENCH_HEADERS': '\n'.join(f'{k}: {v}' for k, v in headers.items())}
    threads = min(connections, CORES)
    command = ['wrk', '-t', str(threads), '-c', str(connections), '-d', f'{seconds}s',
               '--timeout', '30s', '-s', str(script), url]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((line for line in result.stdout.splitlines() if line.startswith('RESULT ')), None)
    if line is None:
        raise RuntimeError(f'wrk gave no result:\n{result.stdout}\n{result.stderr}')
    measured = json.loads(line[len('RESULT '):])
    measured['ok_per_s'] = measured['statuses'].get('200', 0) / (measured['duration_us'] / 1e6)
    return measured


def offline_per_s(build, archive, shape):
    """Samples per second of dlwpt-bench's native engine, one sample per run, every core."""
    result = subprocess.run([str(build / 'apps' / 'dlwpt-bench'), '--engine', 'native', '--archive',
                             str(archive), '--shape', shape, '--runs', '30', '--warmup', '3'],
                            capture_output=True, text=True, timeout=600, check=True)
    return 1000.0 / json.loads(result.stdout.strip().splitlines()[-1])['median_ms']


def run_seconds(args, offline_per_s):
    """Each load runs --seconds, or long enough for --min-answers at the offline rate: a
    CycleGAN picture takes a third of a second, and a 10 s window of some 26 answers would make
    the start of the run and one answer more or less a large part of the figure."""
    return max(args.seconds, math.ceil(args.min_answers / offline_per_s))


def free_port():
    import socket  # noqa: PLC0415
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def dlwpt_serve(build, models, extra=()):
    command = [str(build / 'apps' / 'dlwpt-serve'), '--port', str(free_port())]
    for name, archive in models.items():
        command += ['--model', f'{name}={archive}']
    server = Process(command + list(extra), 'listening on http://')
    server.url = server.output.split('listening on ')[1].split()[0]
    server.has_metrics = True
    return server


def write_bodies(folder, references, data):
    """The three request bodies, as files wrk reads."""
    import torch  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415
    folder = pathlib.Path(folder)
    chunk = torch.randn(1, 32, 48, 48, generator=torch.Generator().manual_seed(0))
    example = data / 'data' / 'p3ch15' / 'cls_val_example.pt' if data else None
    if example and example.exists():
        chunk = torch.load(str(example))[0]
    boundary = 'dlwptbenchboundary'
    meta = json.dumps({'shape': list(chunk.shape)}).encode()
    multipart = b''.join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="meta"; filename="meta"\r\n\r\n'.encode(), meta,
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="blob"; filename="blob"\r\n'
        'Content-Type: application/octet-stream\r\n\r\n'.encode(), chunk.numpy().tobytes(),
        f'\r\n--{boundary}--\r\n'.encode()])
    (folder / 'predict.body').write_bytes(multipart)

    horse = data / 'data' / 'p1ch2' / 'horse.jpg' if data else None
    if horse and horse.exists():
        picture = Image.open(horse).convert('RGB').resize((256, 256), Image.BILINEAR)
    else:
        pixels = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
        picture = Image.fromarray(pixels)
    picture.save(folder / 'image.body', format='JPEG', quality=90)

    slice_ = torch.rand(1, 7, 512, 512, generator=torch.Generator().manual_seed(0))
    header = json.dumps({'inputs': [{'name': 'input', 'datatype': 'FP32', 'shape': [1, 7, 512, 512],
                                     'parameters': {'binary_data_size': slice_.numel() * 4}}],
                         'outputs': [{'name': 'output', 'parameters': {'binary_data': True}}]}).encode()
    (folder / 'infer.body').write_bytes(header + slice_.numpy().tobytes())
    return {
        'predict': ('POST', folder / 'predict.body',
                    {'Content-Type': f'multipart/form-data; boundary={boundary}'}),
        'image': ('PUT', folder / 'image.body', {'Content-Type': 'image/jpeg'}),
        'infer': ('POST', folder / 'infer.body',
                  {'Content-Type': 'application/octet-stream',
                   'Inference-Header-Content-Length': str(len(header))}),
    }


def metric_values(url, name):
    """The values of a Prometheus metric in the server's /metrics text, by label set."""
    import urllib.request  # noqa: PLC0415
    with urllib.request.urlopen(url + '/metrics', timeout=10) as response:
        text = response.read().decode()
    return [float(line.rsplit(' ', 1)[1]) for line in text.splitlines() if line.startswith(name)]


def wait_until_idle(server, timeout_s=120):
    """Waits until no request is queued or running. wrk closes its connections at the end of
    a run, but requests already queued still run: left alone, the next connection count's run
    would begin behind a queue of answers nobody reads (a CycleGAN queue of 8 is 3 s of work).
    dlwpt-serve says so in /metrics; the Python peers, which cannot, get a fixed pause."""
    if not getattr(server, 'has_metrics', False):
        time.sleep(5)
        return
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        queued = sum(metric_values(server.url, 'dlwpt_queue_size'))
        answered = sum(metric_values(server.url, 'dlwpt_inference_count'))
        if queued == 0 and answered == last:  # nothing waits and nothing finished meanwhile
            return
        last = answered
        time.sleep(1)
    raise RuntimeError(f'{server.url} still busy after {timeout_s} s')


def measure(server, name, path, body, connections, seconds, script, rows):
    method, file, headers = body
    wrk(server.url + path, method, file, headers, 1, 2, script)  # warm-up, not counted
    for count in connections:
        wait_until_idle(server)
        result = wrk(server.url + path, method, file, headers, count, seconds, script)
        result.update(server=name, connections=count, seconds=seconds)
        rows.append(result)
        print(f'{name:28} c={count:3}, {seconds} s: {result["ok_per_s"]:8.1f} ok/s, p50 {result["p50_us"] / 1000:8.1f} ms, '
              f'p99 {result["p99_us"] / 1000:8.1f} ms, statuses {result["statuses"]}, '
              f'errors {result["errors"]}', flush=True)
    peak = server.memory_mb('VmHWM')
    for row in rows[-len(connections):]:
        row['peak_rss_mb'] = peak


def table(rows, offline, samples):
    lines = ['| model | server | connections | ok req/s | vs offline | p50 ms | p90 ms | p99 ms | statuses | peak RSS |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for row in rows:
        ceiling = offline[row['model']]
        statuses = ' '.join(f'{k}:{v}' for k, v in sorted(row['statuses'].items()))
        errors = sum(row['errors'].values())
        if errors:
            statuses += f' socket-errors:{errors}'
        lines.append(f'| {row["model"]} | {row["server"]} | {row["connections"]} | {row["ok_per_s"]:.1f} | '
                     f'{100 * row["ok_per_s"] / ceiling:.0f}% | {row["p50_us"] / 1000:.1f} | '
                     f'{row["p90_us"] / 1000:.1f} | {row["p99_us"] / 1000:.1f} | {statuses} | '
                     f'{row.get("peak_rss_mb", 0):.0f} MB |')
    lines.append('')
    lines.append('dlwpt-serve runs its defaults (each model placed as measured, batches of 1, '
                 'a queue of 64) but for CycleGAN (a queue of 8: 3 s of work); each run starts with the queue empty.')
    lines.append('Offline native (dlwpt-bench, the median of 30 runs, measured just before and just after '
                 "the model's dlwpt-serve runs; the faster is the ceiling): " +
                 ', '.join(f'{model} {per_s:.1f}/s ({samples[model][0]:.1f} and {samples[model][1]:.1f})'
                           for model, per_s in offline.items()))
    return '\n'.join(lines)


def soak(build, references, bodies, requests, script):
    server = dlwpt_serve(build, {'nodule': references / 'luna.pt'})
    try:
        method, file, headers = bodies['predict']
        samples = []
        sent = 0
        while sent < requests:
            result = wrk(server.url + '/predict', method, file, headers, 64, 10, script)
            sent += sum(result['statuses'].values())
            samples.append((sent, server.memory_mb('VmRSS')))
            print(f'soak: {sent} requests, RSS {samples[-1][1]:.1f} MB, statuses {result["statuses"]}', flush=True)
        # The first fifth warms up: malloc's arenas grow to their peak as connections come and go.
        warm_requests, warm = next(sample for sample in samples if sample[0] >= requests // 5)
        last = samples[-1][1]
        print(f'soak: RSS after {warm_requests} requests (warmed up) {warm:.1f} MB, after {sent} '
              f'{last:.1f} MB ({100 * (last - warm) / warm:+.1f}%); first sample {samples[0][1]:.1f} MB')
    finally:
        server.stop()


def overload(build, references, bodies, seconds, script):
    """256 connections without pause against a queue of 64 and a 1 s deadline: the answers
    must be 200, 503 or 504, and the accepted requests (from the server's prediction log)
    answered within the deadline."""
    with tempfile.TemporaryDirectory() as folder:
        log = pathlib.Path(folder) / 'predictions.jsonl'
        server = dlwpt_serve(build, {'nodule': references / 'luna.pt'},
                             ['--max-queue-size', '64', '--timeout-ms', '1000', '--prediction-log', str(log)])
        try:
            method, file, headers = bodies['predict']
            result = wrk(server.url + '/predict', method, file, headers, 256, seconds, script)
            print(f'overload, 256 connections for {seconds} s: {result["ok_per_s"]:.1f} ok/s, statuses '
                  f'{result["statuses"]}, socket errors {result["errors"]}, peak RSS '
                  f'{server.memory_mb("VmHWM"):.0f} MB')
        finally:
            status = server.stop()
        accepted = [json.loads(line)['total_us'] / 1000 for line in log.read_text().splitlines()
                    if json.loads(line)['status'] == 200]
        print(f'overload: accepted requests in the server: p50 {np.percentile(accepted, 50):.1f} ms, '
              f'p99 {np.percentile(accepted, 99):.1f} ms (deadline 1000 ms); dlwpt-serve exited with '
              f'status {os.waitstatus_to_exitcode(status)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--build', type=pathlib.Path, default=ROOT / 'build')
    parser.add_argument('--dlwpt', type=pathlib.Path, default=ROOT.parent / 'shared' / 'dlwpt')
    parser.add_argument('--seconds', type=int, default=10)
    parser.add_argument('--min-answers', type=int, default=60,
                        help='runs last long enough for this many answers at the offline rate')
    parser.add_argument('--connections', type=int, nargs='+', default=[1, 8, 64, 256])
    parser.add_argument('--models', nargs='+', default=['nodule', 'zebra', 'segmentation'])
    parser.add_argument('--soak', type=int, default=0, help='LunaModel requests for the memory soak')
    parser.add_argument('--overload', type=int, default=0, help='seconds of overload')
    parser.add_argument('--out', type=pathlib.Path)
    parser.add_argument('--serve-args', default='',
                        help='more dlwpt-serve flags for every model, e.g. "--instances 2 --threads 1"')
    args = parser.parse_args()
    serve_args = shlex.split(args.serve_args)
    build = args.build.resolve()
    references = build / 'references'
    data = args.dlwpt if args.dlwpt.exists() else None
    out = args.out or build / 'bench'
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as folder:
        script = pathlib.Path(folder) / 'bench.lua'
        script.write_text(WRK_SCRIPT)
        bodies = write_bodies(folder, references, data)
        if args.soak:
            soak(build, references, bodies, args.soak, script)
            return
        if args.overload:
            overload(build, references, bodies, args.overload, script)
            return
        archives = {'nodule': references / 'luna.pt', 'zebra': references / 'cyclegan_default.pt',
                    'segmentation': references / 'unet_book.pt'}
        shapes = {'nodule': '1,1,32,48,48', 'zebra': '1,3,256,256', 'segmentation': '1,7,512,512'}
        # This machine's speed drifts over minutes: each model's ceiling is measured beside its
        # own runs, before and after them.
        offline, samples = {}, {}
        rows = []

        def run(model, name, server, path, body):
            first = len(rows)
            measured_here = model not in samples
            try:
                if measured_here:
                    samples[model] = [offline_per_s(build, archives[model], shapes[model])]
                    print(f'offline native {model}: {samples[model][0]:.1f}/s', flush=True)
                measure(server, name, path, body, args.connections, run_seconds(args, samples[model][0]), script,
                        rows)
            finally:
                server.stop()
            if measured_here:
                samples[model].append(offline_per_s(build, archives[model], shapes[model]))
                offline[model] = max(samples[model])
                print(f'offline native {model} after: {samples[model][1]:.1f}/s', flush=True)
            for row in rows[first:]:
                row['model'] = model

        if 'nodule' in args.models:
            run('nodule', 'dlwpt-serve', dlwpt_serve(build, {'nodule': archives['nodule']}, serve_args), '/predict',
                bodies['predict'])
            flask = Process(['gunicorn', '-w', str(CORES), '-b', f'127.0.0.1:{free_port()}',
                             '--chdir', str(ROOT / 'tools' / 'testing'), 'book_flask_server:app'],
                            'Booting worker', env={'DLWPT_MODEL': str(archives['nodule'])})
            flask.url = 'http://' + flask.output.split('Listening at: http://')[1].split()[0]
            run('nodule', 'book Flask (gunicorn)', flask, '/predict', bodies['predict'])
        if 'zebra' in args.models:
            # A queue of 8 pictures is 3 s of work here; the default 64 would be half a minute.
            run('zebra', 'dlwpt-serve', dlwpt_serve(build, {'zebra': archives['zebra']},
                                                    ['--max-queue-size', '8', *serve_args]), '/image',
                bodies['image'])
            port = free_port()
            batching = Process([PYTHON, str(ROOT / 'tools' / 'testing' / 'book_batching_server.py'),
                                str(archives['zebra']), str(port)], 'listening on')
            batching.url = f'http://127.0.0.1:{port}'
            run('zebra', 'book batching port (aiohttp)', batching, '/image', bodies['image'])
        if 'segmentation' in args.models:
            # The default queue of 64 holds 64 slices of 7 MiB (about 900 MB in all), and 64
            # connections never see a 503: a smaller queue turns the surplus into refusals whose
            # 7 MiB bodies must still be read, at the cost of the slices being computed.
            run('segmentation', 'dlwpt-serve', dlwpt_serve(build, {'segmentation': archives['segmentation']},
                                                           serve_args),
                '/v2/models/segmentation/infer', bodies['infer'])

        text = table(rows, offline, samples)
        print(text)
        (out / 'bench_serve.md').write_text(text + '\n')
        (out / 'bench_serve.json').write_text(json.dumps({'offline_per_s': offline, 'offline_samples': samples,
                                                          'rows': rows}, indent=1))
        print(f'written: {out / "bench_serve.md"}')


if __name__ == '__main__':
    main()
