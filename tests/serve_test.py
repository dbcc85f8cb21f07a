#!/usr/bin/env python3
"""dlwpt-serve end to end, over 127.0.0.1, as its clients use it.

Every answer is checked against a known one: the book's client (/predict) and the v2
protocol against the same model in PyTorch (tools/archive.py's reference models), PUT /image
against zebraify on the same picture, and every refusal (malformed HTTP, truncated bodies,
wrong shapes, oversized bodies and images, missing API keys, overload, deadlines, slow
clients, SIGTERM under load) against its status. Each server runs on a free port, is stopped
by its pid, and every wait is bounded.

usage: serve_test.py BUILD_DIR REFERENCE_DIR SOURCE_DIR [DATA_DIR]
"""
import collections
import concurrent.futures
import gzip
import io
import json
import os
import pathlib
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import numpy as np
import requests
import torch

BUILD, REFERENCES, SOURCE = (pathlib.Path(p) for p in sys.argv[1:4])
DATA = pathlib.Path(sys.argv[4]) if len(sys.argv) > 4 else None
sys.argv[1:] = [a for a in sys.argv[5:]]  # the rest go to unittest
sys.path.insert(0, str(SOURCE / 'tools'))
sys.path.insert(0, str(SOURCE / 'tools' / 'testing'))
from archive import load_reference_model  # noqa: E402
from bounded import wait_bounded  # noqa: E402

SERVE = BUILD / 'apps' / 'dlwpt-serve'
ZEBRAIFY = BUILD / 'apps' / 'zebraify'
CT_SEGMENT = BUILD / 'apps' / 'ct-segment'
TIME_SCALE = float(os.environ.get('DLWPT_TEST_TIME_SCALE', '1'))
START_TIMEOUT_S = 60 * TIME_SCALE
REQUEST_TIMEOUT_S = 60 * TIME_SCALE

# The book's trained classifier when the book's data was there for the reference export.
NODULE = REFERENCES / ('book_cls.pt' if (REFERENCES / 'book_cls.pt').exists() else 'luna.pt')
ZEBRA = REFERENCES / 'cyclegan_small.pt'
SEGMENTATION = REFERENCES / 'unet_book.pt'
CLS_EXAMPLE = DATA / 'data' / 'p3ch15' / 'cls_val_example.pt' if DATA else None
HORSE = DATA / 'data' / 'p1ch2' / 'horse.jpg' if DATA else None


class Server:
    """dlwpt-serve on a free port of 127.0.0.1; stopped (SIGTERM, then SIGKILL) by its pid."""

    def __init__(self, *arguments, env=None):
        self.stderr = tempfile.TemporaryFile()
        self.status = None
        self.process = subprocess.Popen(
            [str(SERVE), '--port', '0', *arguments], stdout=subprocess.PIPE, stderr=self.stderr,
            env={**os.environ, **(env or {})})
        line = self._read_line(time.monotonic() + START_TIMEOUT_S)
        if 'listening on http://' not in line:
            self.stop()
            raise AssertionError(f'dlwpt-serve did not start: {line!r}\n{self.errors()}')
        self.url = line.strip().split('listening on ')[1]
        self.port = int(self.url.rsplit(':', 1)[1])

    def _read_line(self, deadline):
        out = self.process.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], 0.1)
            if ready:
                return out.readline().decode()
            if self.process.poll() is not None:
                return ''
        return ''

    def errors(self):
        if self.stderr.closed:
            return self.stderr_text
        self.stderr.seek(0)
        return self.stderr.read().decode(errors='replace')

    def stop(self, timeout_s=30):
        """SIGTERM, then the exit status (SIGKILL after `timeout_s`); once stopped, the same."""
        if self.status is None:
            self.process.send_signal(signal.SIGTERM)
            self.status, _ = wait_bounded(self.process, time.monotonic() + timeout_s * TIME_SCALE)
            self.process.returncode = os.waitstatus_to_exitcode(self.status)  # reaped by wait4
            self.process.stdout.close()
            self.stderr_text = self.errors()
            self.stderr.close()
        return self.status

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def close_within(actual, expected, rtol, atol, what):
    """Asserts |actual - expected| <= atol + rtol * |expected| everywhere; prints the worst."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f'{what}: shape {actual.shape} != {expected.shape}'
    difference = np.abs(actual - expected)
    excess = difference - (atol + rtol * np.abs(expected))
    print(f'{what}: max |difference| {difference.max():.3g} (rtol {rtol}, atol {atol})')
    assert excess.max() <= 0, f'{what}: differs by {difference.max():.3g}'


def reference_outputs(archive, batch):
    _, model = load_reference_model(archive)
    model.eval()
    with torch.no_grad():
        return model(batch)


def v2_binary_request(tensor, outputs):
    header = json.dumps({
        'inputs': [{'name': 'input', 'datatype': 'FP32', 'shape': list(tensor.shape),
                    'parameters': {'binary_data_size': tensor.numel() * 4}}],
        'outputs': [{'name': name, 'parameters': {'binary_data': True}} for name in outputs],
    }).encode()
    return header + tensor.contiguous().numpy().tobytes(), len(header)


def v2_binary_outputs(response):
    """{name: numpy array} of a binary v2 response."""
    header_length = int(response.headers['Inference-Header-Content-Length'])
    header = json.loads(response.content[:header_length])
    offset = header_length
    outputs = {}
    for output in header['outputs']:
        size = output['parameters']['binary_data_size']
        outputs[output['name']] = np.frombuffer(response.content[offset:offset + size],
                                                dtype=np.float32).reshape(output['shape'])
        offset += size
    assert offset == len(response.content)
    return outputs


def raw_exchange(port, data, timeout_s=10):
    """Sends bytes on a fresh connection and returns what comes back until the server closes
    it or `timeout_s` passes."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout_s) as connection:
        connection.sendall(data)
        received = b''
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
            if b'\r\n\r\n' in received and b'Content-Length: 0' in received:
                break
        return received


def png_claiming(width, height):
    """A small PNG (valid chunks and CRCs) whose header claims a size its data do not hold."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) +
            chunk(b'IDAT', zlib.compress(b'\0' * 1000)) + chunk(b'IEND', b''))


def phantom_mha(folder, slices=24, size=64):
    """A synthetic CT (tools/testing/ct_phantom.py) as one .mha file: its .mhd header with
    ElementDataFile = LOCAL, then the voxels."""
    mhd = pathlib.Path(folder) / 'phantom.mhd'
    subprocess.run([sys.executable, str(SOURCE / 'tools' / 'testing' / 'ct_phantom.py'), str(mhd),
                    '--slices', str(slices), '--size', str(size)], check=True, timeout=60)
    header = [line for line in mhd.read_text().splitlines() if not line.startswith('ElementDataFile')]
    mha = mhd.with_suffix('.mha')
    mha.write_bytes('\n'.join(header + ['ElementDataFile = LOCAL']).encode() + b'\n' +
                    mhd.with_suffix('.raw').read_bytes())
    return mha


def metric_value(url, series):
    """One series' value in the server's /metrics (0 when absent)."""
    text = requests.get(url + '/metrics', timeout=REQUEST_TIMEOUT_S).text
    return sum(float(line.rsplit(' ', 1)[1]) for line in text.splitlines() if line.startswith(series + ' '))


def queued_requests(url):
    """Requests waiting in the server's queues, from its /metrics."""
    text = requests.get(url + '/metrics', timeout=REQUEST_TIMEOUT_S).text
    return sum(float(line.rsplit(' ', 1)[1]) for line in text.splitlines() if line.startswith('dlwpt_queue_size'))


def book_chunk():
    """The chunk the book's client posts, or a random one when the book's data is missing."""
    if CLS_EXAMPLE and CLS_EXAMPLE.exists():
        return torch.load(str(CLS_EXAMPLE))[0]
    return torch.randn(1, 32, 48, 48, generator=torch.Generator().manual_seed(3))


def books_client(url, chunk):
    """What the book's p3ch15/cls_client.py does: multipart `meta` + `blob` to /predict."""
    meta = io.StringIO(json.dumps({'shape': list(chunk.shape)}))
    data = io.BytesIO(bytearray(chunk.numpy()))
    return requests.post(url + '/predict', files={'meta': meta, 'blob': data},
                         timeout=REQUEST_TIMEOUT_S)


def books_client_with(url, headers):
    chunk = book_chunk()
    return requests.post(url + '/predict', headers=headers, timeout=REQUEST_TIMEOUT_S,
                         files={'meta': io.StringIO(json.dumps({'shape': list(chunk.shape)})),
                                'blob': io.BytesIO(bytearray(chunk.numpy()))})


class ServeTest(unittest.TestCase):
    server = None
    log = None

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory()
        cls.log = pathlib.Path(cls.folder.name) / 'predictions.jsonl'
        cls.server = Server('--model', f'nodule={NODULE}', '--model', f'zebra={ZEBRA}',
                            '--model', f'segmentation={SEGMENTATION}', '--threads', '1',
                            '--prediction-log', str(cls.log))

    @classmethod
    def tearDownClass(cls):
        status = cls.server.stop()
        cls.folder.cleanup()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, cls.server.errors()

    def test_books_client_gets_pytorchs_probability(self):
        chunk = book_chunk()
        response = books_client(self.server.url, chunk)
        self.assertEqual(response.status_code, 200, response.text)
        answer = response.json()
        expected = reference_outputs(NODULE, chunk.unsqueeze(0))[1][0].numpy()
        close_within([answer['prob_malignant']], [expected[1]], 1e-4, 1e-6, '/predict prob_malignant')
        close_within(answer['probabilities'], expected, 1e-4, 1e-6, '/predict probabilities')

    def test_v2_json_and_binary_equal_pytorch(self):
        batch = torch.randn(3, 1, 32, 48, 48, generator=torch.Generator().manual_seed(1))
        logits, probabilities = reference_outputs(NODULE, batch)
        body = {'id': 'json-1', 'inputs': [{'name': 'input', 'datatype': 'FP32',
                                            'shape': list(batch.shape),
                                            'data': batch.flatten().tolist()}]}
        response = requests.post(self.server.url + '/v2/models/nodule/infer', json=body,
                                 timeout=REQUEST_TIMEOUT_S)
        self.assertEqual(response.status_code, 200, response.text)
        answer = response.json()
        self.assertEqual(answer['id'], 'json-1')
        by_name = {output['name']: output for output in answer['outputs']}
        self.assertEqual(by_name['logits']['shape'], [3, 2])
        close_within(np.reshape(by_name['logits']['data'], (3, 2)), logits, 1e-4, 1e-4, 'v2 JSON logits')
        close_within(np.reshape(by_name['probabilities']['data'], (3, 2)), probabilities, 1e-4, 1e-6,
                     'v2 JSON probabilities')

        data, header_length = v2_binary_request(batch, ['probabilities'])
        response = requests.post(self.server.url + '/v2/models/nodule/infer', data=data,
                                 headers={'Inference-Header-Content-Length': str(header_length)},
                                 timeout=REQUEST_TIMEOUT_S)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers['Content-Type'], 'application/octet-stream')
        outputs = v2_binary_outputs(response)
        self.assertEqual(list(outputs), ['probabilities'])
        close_within(outputs['probabilities'], probabilities, 1e-4, 1e-6, 'v2 binary probabilities')

    def test_segmentation_slice_by_binary_extension_equals_pytorch(self):
        batch = torch.randn(1, 7, 64, 96, generator=torch.Generator().manual_seed(2))
        expected = reference_outputs(SEGMENTATION, batch)
        data, header_length = v2_binary_request(batch, ['output'])
        response = requests.post(self.server.url + '/v2/models/segmentation/infer', data=data,
                                 headers={'Inference-Header-Content-Length': str(header_length)},
                                 timeout=REQUEST_TIMEOUT_S)
        self.assertEqual(response.status_code, 200, response.text)
        close_within(v2_binary_outputs(response)['output'], expected, 1e-3, 1e-5,
                     'v2 segmentation output (sigmoid)')

    def test_put_image_equals_zebraify(self):
        with tempfile.TemporaryDirectory() as folder:
            picture = pathlib.Path(folder) / 'horse.png'
            if HORSE and HORSE.exists():
                picture = HORSE
            else:
                from PIL import Image  # noqa: PLC0415
                pixels = np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(picture)
            zebra = pathlib.Path(folder) / 'zebra.png'
            subprocess.run([str(ZEBRAIFY), '--weights', str(ZEBRA), '--threads', '1', str(picture),
                            '--output', str(zebra)], check=True, timeout=REQUEST_TIMEOUT_S,
                           capture_output=True)
            body = picture.read_bytes()
            response = requests.put(self.server.url + '/image', data=body, timeout=REQUEST_TIMEOUT_S,
                                    headers={'Accept': 'image/png'})
            self.assertEqual(response.status_code, 200, response.text)
            self.assertEqual(response.headers['Content-Type'], 'image/png')
            from PIL import Image  # noqa: PLC0415
            served = np.asarray(Image.open(io.BytesIO(response.content)).convert('RGB'), dtype=np.float64)
            local = np.asarray(Image.open(zebra).convert('RGB'), dtype=np.float64)
            self.assertEqual(served.shape, local.shape)
            close_within(served, local, 0, 0, 'PUT /image (PNG) against zebraify, grey levels')
            # The book's client gets JPEG, of the same size.
            response = requests.put(self.server.url + '/image', data=body, timeout=REQUEST_TIMEOUT_S)
            self.assertEqual(response.headers['Content-Type'], 'image/jpeg')
            self.assertEqual(Image.open(io.BytesIO(response.content)).size, (local.shape[1], local.shape[0]))
            # `curl -T horse.jpg .../image`, as README and the issue put it; and with the
            # Expect: 100-continue curl sends for bodies above 1 MiB.
            for extra in [[], ['-H', 'Expect: 100-continue']]:
                answer = pathlib.Path(folder) / 'curl.jpg'
                done = subprocess.run(['curl', '-sS', '-T', str(picture), *extra, '-o', str(answer),
                                       '-w', '%{http_code}', self.server.url + '/image'],
                                      capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S)
                self.assertEqual(done.stdout, '200', done.stderr)
                self.assertEqual(Image.open(answer).size, (local.shape[1], local.shape[0]))

    def test_ct_nodules_equal_ct_segment(self):
        with tempfile.TemporaryDirectory() as folder:
            mha = phantom_mha(folder)
            subprocess.run([str(CT_SEGMENT), str(mha), '--output', str(pathlib.Path(folder) / 'out'),
                            '--segmentation', str(SEGMENTATION), '--classifier', str(NODULE),
                            '--threads', '1'], check=True, timeout=REQUEST_TIMEOUT_S, capture_output=True)
            local = json.loads((pathlib.Path(folder) / 'out' / 'phantom' / 'candidates.json').read_text())
            response = requests.post(self.server.url + '/v1/ct/nodules', data=mha.read_bytes(),
                                     timeout=REQUEST_TIMEOUT_S)
            self.assertEqual(response.status_code, 200, response.text)
            served = response.json()
            print(f'/v1/ct/nodules: {len(served["candidates"])} candidates, ct-segment '
                  f'{len(local["candidates"])}')
            self.assertEqual(served.keys(), local.keys())
            self.assertEqual(served['candidates'], local['candidates'])
            # A header naming files on the server's disk, and a cut scan, are refused.
            text = mha.read_bytes().replace(b'ElementDataFile = LOCAL', b'ElementDataFile = /etc/passwd')
            refused = requests.post(self.server.url + '/v1/ct/nodules', data=text, timeout=10)
            self.assertEqual(refused.status_code, 400)
            self.assertIn('ElementDataFile = LOCAL', refused.json()['error'])
            cut = requests.post(self.server.url + '/v1/ct/nodules', data=mha.read_bytes()[:-1000], timeout=10)
            self.assertEqual(cut.status_code, 400)
            self.assertIn('the request body', cut.json()['error'])
            self.assertNotIn('/tmp', cut.json()['error'])
            garbage = requests.post(self.server.url + '/v1/ct/nodules', data=b'x' * 100, timeout=10)
            self.assertEqual(garbage.status_code, 400)
            self.assertIn('not a MetaImage', garbage.json()['error'])

    def test_health_metadata_and_metrics(self):
        url = self.server.url
        self.assertEqual(requests.get(url + '/v2/health/live', timeout=10).status_code, 200)
        self.assertEqual(requests.get(url + '/v2/health/ready', timeout=10).status_code, 200)
        self.assertEqual(requests.get(url + '/v2/models/nodule/ready', timeout=10).status_code, 200)
        metadata = requests.get(url + '/v2/models/segmentation', timeout=10).json()
        self.assertEqual(metadata['inputs'], [{'name': 'input', 'datatype': 'FP32', 'shape': [-1, 7, -1, -1]}])
        missing = requests.get(url + '/v2/models/nothing', timeout=10)
        self.assertEqual(missing.status_code, 404)
        self.assertIn('no model named "nothing"', missing.json()['error'])
        books_client(url, book_chunk())
        metrics = requests.get(url + '/metrics', timeout=10).text
        for needle in ['dlwpt_requests_total{endpoint="predict",model="nodule",status="200"}',
                       'dlwpt_queue_duration_us_bucket{model="nodule"',
                       'dlwpt_compute_duration_us_count{model="nodule"}',
                       'dlwpt_batch_size_bucket{model="nodule"', 'dlwpt_inference_count{model="nodule"}',
                       'dlwpt_execution_count{model="nodule"}', 'dlwpt_queue_size{model="nodule"} 0',
                       'process_resident_memory_bytes ']:
            self.assertIn(needle, metrics)
        self.assertNotIn('model="nothing"', metrics)
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        predictions = [line for line in lines if line['endpoint'] == 'predict' and line['status'] == 200]
        self.assertTrue(predictions)
        for key in ['id', 'time', 'model', 'queue_us', 'compute_us', 'batch_size', 'result']:
            self.assertIn(key, predictions[-1])

    def test_bad_requests_get_their_status_and_reason(self):
        url = self.server.url
        infer = url + '/v2/models/nodule/infer'
        cases = [
            (requests.post(infer, data=b'{"inputs": [', timeout=10), 400, 'not valid JSON'),
            (requests.post(infer, json={'inputs': [{'name': 'input', 'datatype': 'FP32',
                                                    'shape': [1, 1, 32, 48, 47], 'data': [0] * 72192}]},
                           timeout=10), 400, 'wrong size in dimension 4'),
            (requests.post(infer, data=b'{}', headers={'Inference-Header-Content-Length': 'x'},
                           timeout=10), 400, 'not a byte count'),
            (requests.post(url + '/v2/models/segmentation/infer',
                           data=v2_binary_request(torch.zeros(1, 7, 30, 32), ['output'])[0],
                           headers={'Inference-Header-Content-Length': str(
                               v2_binary_request(torch.zeros(1, 7, 30, 32), ['output'])[1])},
                           timeout=10), 400, 'multiples of 4'),
            (requests.post(url + '/predict', data=b'x', timeout=10), 400, 'multipart/form-data'),
            (requests.post(url + '/predict', files={'meta': io.StringIO('{"shape": [1, 32, 48, 48]}'),
                                                    'blob': io.BytesIO(b'1234')}, timeout=10),
             400, '"blob" field has 4 bytes'),
            (requests.put(url + '/image', data=b'not a picture', timeout=10), 400, 'neither JPEG nor PNG'),
            (requests.put(url + '/image', data=b'', timeout=10), 400, 'is empty'),
            (requests.put(url + '/image', data=png_claiming(60000, 60000), timeout=10),
             413, 'claims 60000x60000'),
            (requests.get(url + '/nowhere', timeout=10), 404, 'no such path'),
            (requests.delete(url + '/predict', timeout=10), 405, 'method not allowed'),
        ]
        if HORSE and HORSE.exists():
            cut = HORSE.read_bytes()[:5000]
            cases.append((requests.put(url + '/image', data=cut, timeout=10), 400, 'cannot decode'))
        for response, status, reason in cases:
            self.assertEqual(response.status_code, status, response.text)
            self.assertIn(reason, response.json()['error'])
        # The server is fine after all of them.
        self.assertEqual(books_client(url, book_chunk()).status_code, 200)

    def test_expect_100_continue_is_answered_before_the_body(self):
        body = json.dumps({'inputs': [{'name': 'input', 'datatype': 'FP32', 'shape': [1, 1, 32, 48, 48],
                                       'data': [0.5] * (32 * 48 * 48)}]}).encode()
        with socket.create_connection(('127.0.0.1', self.server.port), timeout=30) as connection:
            connection.sendall(('POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\n'
                                f'Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n').encode())
            self.assertTrue(connection.recv(65536).startswith(b'HTTP/1.1 100 Continue'))
            connection.sendall(body)
            answer = b''
            while b'"outputs"' not in answer:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
            self.assertTrue(answer.startswith(b'HTTP/1.1 200 '), answer[:200])

    def test_malformed_http_truncated_bodies_and_slow_clients(self):
        port = self.server.port
        self.assertIn(b' 400 ', raw_exchange(port, b'GARBAGE\r\n\r\n').split(b'\r\n')[0])
        # A request line, one header line, and many header lines beyond the head's 16 KiB.
        long = b'a' * 20000
        self.assertIn(b' 414 ', raw_exchange(port, b'GET /v2/' + long + b' HTTP/1.1\r\nHost: x\r\n\r\n')
                      .split(b'\r\n')[0])
        self.assertIn(b' 431 ', raw_exchange(port, b'GET /v2 HTTP/1.1\r\nX-Big: ' + long + b'\r\n\r\n')
                      .split(b'\r\n')[0])
        many = b''.join(b'X-%d: %s\r\n' % (i, b'a' * 100) for i in range(10000))  # 1 MB
        self.assertIn(b' 431 ', raw_exchange(port, b'GET /v2 HTTP/1.1\r\n' + many + b'\r\n').split(b'\r\n')[0])
        self.assertIn(b' 400 ', raw_exchange(port, b'GET /v2 HTTP/9.9\r\nHost: x\r\n\r\n')
                      .split(b'\r\n')[0])
        # A body shorter than its Content-Length: the server waits up to its read timeout for
        # the rest, then drops the connection without answering a half request.
        with socket.create_connection(('127.0.0.1', port), timeout=30) as connection:
            connection.sendall(b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\n'
                               b'Content-Length: 1000\r\n\r\n{"inputs": [')
            connection.shutdown(socket.SHUT_WR)
            self.assertNotIn(b' 200 ', connection.recv(65536))
        # A slow client holds one connection, not the server.
        slow = socket.create_connection(('127.0.0.1', port), timeout=30)
        slow.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\n')
        self.assertEqual(books_client(self.server.url, book_chunk()).status_code, 200)
        slow.close()

    def test_framing_ranges_and_unread_bodies_never_make_a_second_answer(self):
        port, url = self.server.port, self.server.url

        def answers(data, timeout_s=5):
            started = time.monotonic()
            received = raw_exchange(port, data, timeout_s)
            return [line for line in received.split(b'\r\n') if line.startswith(b'HTTP/1.1 ')], \
                received, time.monotonic() - started
        smuggled = b'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'
        for head, status in [
                (b'GET /v2/models/nodule HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n', b' 400 '),
                (b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n',
                 b' 400 '),
                (b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n'
                 b'Transfer-Encoding: chunked\r\n\r\n', b' 400 '),
                (b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -%d\r\n\r\n', b' 400 '),
                (b'POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nX-Length: %d\r\n\r\n',
                 b' 501 ')]:
            lines, received, seconds = answers(head % len(smuggled) + smuggled)
            request_line = head.split(b'\r\n')[0].decode()
            print(f'{request_line} ...: {lines} in {seconds:.2f} s')
            self.assertEqual(len(lines), 1, received)  # the body is never answered as a request
            self.assertIn(status, lines[0])
            self.assertIn(b'Connection: close', received)
            self.assertLess(seconds, 4)  # refused at once, not after the read timeout
        # Range is ignored: the same answer, not one copy per range asked.
        chunk = book_chunk()
        plain = books_client(url, chunk)
        ranged = requests.post(url + '/predict', headers={'Range': 'bytes=' + ','.join(['0-'] * 500)},
                               timeout=REQUEST_TIMEOUT_S,
                               files={'meta': io.StringIO(json.dumps({'shape': list(chunk.shape)})),
                                      'blob': io.BytesIO(bytearray(chunk.numpy()))})
        self.assertEqual(ranged.status_code, 200)
        self.assertEqual(ranged.json(), plain.json())
        # JSON tensors beyond 16 MiB are refused: their parse takes some 25 times the text.
        started = time.monotonic()
        huge_json = requests.post(url + '/v2/models/nodule/infer', timeout=REQUEST_TIMEOUT_S,
                                  data=b'{"inputs": [{"name": "input", "shape": [9000000], "datatype": "FP32", '
                                       b'"data": [' + b'0,' * 9000000 + b'0]}]}')
        print(f'18 MB of JSON numbers: {huge_json.status_code} in {time.monotonic() - started:.2f} s')
        self.assertEqual(huge_json.status_code, 413)
        self.assertIn('binary-data extension', huge_json.json()['error'])
        # Expect: 100-continue for a body over the limit is refused before it is sent.
        lines, received, _ = answers(b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\n'
                                     b'Content-Length: 200000000\r\nExpect: 100-continue\r\n\r\n')
        self.assertEqual(len(lines), 1, received)
        self.assertIn(b' 413 ', lines[0])
        self.assertEqual(requests.get(url + '/v2/health/live', timeout=10).status_code, 200)

    def test_bytes_that_are_not_utf8_and_outputs_that_overflow_get_400(self):
        url = self.server.url
        not_utf8 = requests.post(url + '/predict', timeout=10, files={
            'meta': io.BytesIO(b'{"shape": [1, 32, 48, 48], "x": "\xff\xfe"}'), 'blob': io.BytesIO(b'1234')})
        self.assertEqual(not_utf8.status_code, 400, not_utf8.text)
        self.assertIn('error', not_utf8.json())
        self.assertRegex(not_utf8.headers['X-Request-Id'], r'^[0-9a-f]{8}-[0-9]+$')
        bad_id = requests.post(url + '/v2/models/nodule/infer', timeout=10,
                               data=b'{"id": "\xc3\x28", "inputs": []}')
        self.assertEqual(bad_id.status_code, 400, bad_id.text)
        # Finite inputs so large that the model's float32 arithmetic overflows.
        data, header_length = v2_binary_request(torch.full((1, 3, 32, 32), 3e38), ['output'])
        overflow = requests.post(url + '/v2/models/zebra/infer', data=data, timeout=REQUEST_TIMEOUT_S,
                                 headers={'Inference-Header-Content-Length': str(header_length)})
        print(f'zebra of 3e38 everywhere: {overflow.status_code} {overflow.text[:120]}')
        self.assertEqual(overflow.status_code, 400)
        self.assertIn('NaN or infinite', overflow.json()['error'])
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        self.assertIn(not_utf8.headers['X-Request-Id'], [line['id'] for line in lines])

    def test_ct_headers_read_as_metaio_reads_them_and_small_scans_refused(self):
        with tempfile.TemporaryDirectory() as folder:
            mha = phantom_mha(folder)
            header, data = mha.read_bytes().split(b'ElementDataFile = LOCAL\n', 1)
            target = str(NODULE).encode()
            for disguise in [b'Comment = ElementDataFile = LOCAL\n' + header + b'ElementDataFile = ' + target + b'\n',
                             b'ElementDataFileX = LOCAL\n' + header + b'ElementDataFile = ' + target + b'\n',
                             header + b'elementdatafile = ' + target + b'\nElementDataFile = LOCAL\n',
                             header + b'ElementDataFile = LIST\n']:
                refused = requests.post(self.server.url + '/v1/ct/nodules', data=disguise + data, timeout=30)
                print(f'{disguise[:40]!r}...: {refused.status_code} {refused.text[:150]}')
                self.assertEqual(refused.status_code, 400)
                self.assertNotIn('holds', refused.json()['error'])  # nothing about the named file
            small = phantom_mha(folder, slices=4, size=64)
            refused = requests.post(self.server.url + '/v1/ct/nodules', data=small.read_bytes(), timeout=30)
            self.assertEqual(refused.status_code, 400, refused.text)
            self.assertIn('slices', refused.json()['error'])

    def test_concurrent_clients_all_get_their_own_answer(self):
        chunks = [torch.randn(1, 32, 48, 48, generator=torch.Generator().manual_seed(10 + i)) for i in range(24)]
        expected = reference_outputs(NODULE, torch.stack(chunks))[1][:, 1].numpy()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda chunk: books_client(self.server.url, chunk), chunks))
        self.assertEqual([answer.status_code for answer in answers], [200] * len(chunks))
        close_within([answer.json()['prob_malignant'] for answer in answers], expected, 1e-4, 1e-6,
                     '24 concurrent /predict answers')


class ServeOperationsTest(unittest.TestCase):
    """Servers started with other settings: keys, limits, overload, deadlines, SIGTERM."""

    def test_api_key_and_environment_configuration(self):
        with tempfile.TemporaryDirectory() as folder:
            key_file = pathlib.Path(folder) / 'key'
            key_file.write_text('s3cret-key-of-some-length\n')
            with Server('--api-key-file', str(key_file),
                        env={'DLWPT_SERVE_MODEL': f'nodule={NODULE},segmentation={SEGMENTATION}',
                             'DLWPT_SERVE_MAX_BODY_MB': '1'}) as server:
                self.assertEqual(requests.get(server.url + '/v2/health/ready', timeout=10).status_code, 200)
                refused = requests.get(server.url + '/v2/models/nodule', timeout=10)
                self.assertEqual(refused.status_code, 401)
                self.assertEqual(refused.headers['WWW-Authenticate'], 'Bearer')
                wrong = requests.get(server.url + '/v2/models/nodule', timeout=10,
                                     headers={'Authorization': 'Bearer s3cret-key-of-some-lengtH'})
                self.assertEqual(wrong.status_code, 401)
                authorized = {'Authorization': 'Bearer s3cret-key-of-some-length'}
                self.assertEqual(requests.get(server.url + '/v2/models/nodule', headers=authorized,
                                              timeout=10).status_code, 200)
                # Beyond --max-body-mb (the CT endpoint's larger limit is what the HTTP layer
                # enforces), plain and multipart.
                too_large = requests.post(server.url + '/v2/models/nodule/infer', headers=authorized,
                                          data=b'x' * (2 << 20), timeout=10)
                self.assertEqual(too_large.status_code, 413)
                self.assertIn("larger than this endpoint's limit", too_large.json()['error'])
                # The refused body is read to its end: the same connection serves on.
                with requests.Session() as session:
                    session.headers.update(authorized)
                    refused = session.post(server.url + '/v2/models/nodule/infer', data=b'x' * (2 << 20), timeout=10)
                    self.assertEqual(refused.status_code, 413)
                    self.assertEqual(session.get(server.url + '/v2/models/nodule', timeout=10).status_code, 200)
                too_large = requests.post(server.url + '/predict', headers=authorized, timeout=10,
                                          files={'meta': io.StringIO('{}'), 'blob': io.BytesIO(b'x' * (2 << 20))})
                self.assertEqual(too_large.status_code, 413)
                self.assertEqual(books_client_with(server.url, authorized).status_code, 200)
                # A refused request's body is never taken for the next request.
                smuggled = b'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'
                received = raw_exchange(server.port, b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\n'
                                        b'Content-Length: %d\r\n\r\n' % len(smuggled) + smuggled, 5)
                self.assertEqual(received.count(b'HTTP/1.1 '), 1, received)
                self.assertTrue(received.startswith(b'HTTP/1.1 401 '), received)
                # A compressed body stops inflating at the limit (64 MiB of zeros in 64 KiB).
                started = time.monotonic()
                bomb = requests.post(server.url + '/v2/models/nodule/infer', timeout=30,
                                     headers={**authorized, 'Content-Encoding': 'gzip'},
                                     data=gzip.compress(b'\0' * (64 << 20)))
                print(f'gzip bomb: {bomb.status_code} after {time.monotonic() - started:.2f} s')
                self.assertEqual(bomb.status_code, 413, bomb.text)
                self.assertEqual(bomb.headers.get('Connection'), 'close')

    def test_overload_gets_503_and_deadlines_504(self):
        with Server('--model', f'segmentation={SEGMENTATION}', '--threads', '1',
                    '--max-queue-size', '2', '--max-batch-size', '1') as server:
            data, header_length = v2_binary_request(torch.rand(1, 7, 512, 512), ['output'])

            def post(extra_headers):
                return requests.post(server.url + '/v2/models/segmentation/infer', data=data,
                                     headers={'Inference-Header-Content-Length': str(header_length),
                                              **extra_headers}, timeout=REQUEST_TIMEOUT_S)

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda _: post({}), range(16)))
            statuses = sorted(answer.status_code for answer in answers)
            print(f'16 concurrent U-Net slices, queue of 2: statuses {statuses}')
            self.assertTrue(set(statuses) <= {200, 503}, statuses)
            self.assertIn(200, statuses)
            self.assertIn(503, statuses)
            self.assertTrue(all(a.headers.get('Retry-After') == '1' for a in answers if a.status_code == 503))
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                answers = list(pool.map(lambda _: post({'Request-Timeout-Ms': '5'}), range(3)))
            statuses = sorted(answer.status_code for answer in answers)
            print(f'3 U-Net slices with a 5 ms deadline: statuses {statuses}')
            self.assertIn(504, statuses)
            self.assertTrue(set(statuses) <= {200, 504}, statuses)
            self.assertEqual(post({}).status_code, 200)

    def test_sigterm_under_load_answers_everything_then_exits(self):
        server = Server('--model', f'segmentation={SEGMENTATION}', '--threads', '1',
                        '--max-queue-size', '64')
        try:
            data, header_length = v2_binary_request(torch.rand(1, 7, 512, 512), ['output'])

            def post(_):
                try:
                    return requests.post(server.url + '/v2/models/segmentation/infer', data=data,
                                         headers={'Inference-Header-Content-Length': str(header_length)},
                                         timeout=REQUEST_TIMEOUT_S).status_code
                except requests.ConnectionError:
                    return 'refused'  # sent after the listener closed

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(post, i) for i in range(8)]
                # SIGTERM once requests are queued, however long this machine takes to send
                # them (a fixed 0.3 s was too short for all 8 on a busy CI machine).
                deadline = time.monotonic() + START_TIMEOUT_S
                while queued_requests(server.url) == 0:
                    self.assertLess(time.monotonic(), deadline, 'no request was queued')
                    time.sleep(0.05)
                server.process.send_signal(signal.SIGTERM)
                statuses = [future.result() for future in futures]
            status = server.stop(timeout_s=30)
            print(f'SIGTERM with 8 U-Net requests in flight: statuses {statuses}')
            self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, server.errors())
            self.assertIn(200, statuses)
            self.assertTrue(set(statuses) <= {200, 503, 'refused'}, statuses)
            self.assertIn('draining', server.errors())
            self.assertIn('every request answered', server.errors())
        finally:
            server.stop()

    def test_sigterm_exits_within_the_drain_timeout_despite_a_trickling_client(self):
        server = Server('--model', f'nodule={NODULE}', '--drain-timeout-ms', '1000')
        stop_trickling = False

        def trickle():
            with socket.create_connection(('127.0.0.1', server.port), timeout=30) as connection:
                connection.sendall(b'GET /v2/health/live HTTP/1.1\r\n')
                for _ in range(60):  # one header byte every 0.25 s, for 15 s at most
                    if stop_trickling:
                        return
                    try:
                        connection.sendall(b'X')
                    except OSError:
                        return  # the server closed it
                    time.sleep(0.25)
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                trickler = pool.submit(trickle)
                time.sleep(0.5)
                started = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                status = server.stop(timeout_s=12)
                seconds = time.monotonic() - started
                stop_trickling = True
                trickler.result()
            print(f'SIGTERM with a client trickling its headers: exit after {seconds:.1f} s')
            self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, server.errors())
            self.assertLess(seconds, 4)  # drain timeout 1 s: the trickling client is not waited for
        finally:
            stop_trickling = True
            server.stop()

    def test_a_scan_past_its_deadline_stops_and_frees_the_runner(self):
        with Server('--model', f'nodule={NODULE}', '--model', f'segmentation={SEGMENTATION}',
                    '--threads', '1') as server, tempfile.TemporaryDirectory() as folder:
            # 200 slices of air: about 5 s to read and check, then 9-26 s of analysis on one
            # thread here (the longer on a busy machine), unless it stops at its deadline.
            header = ('ObjectType = Image\nNDims = 3\nDimSize = 512 512 200\nElementType = MET_SHORT\n'
                      'ElementSpacing = 0.7 0.7 2.5\nElementDataFile = LOCAL\n').encode()
            long_scan = header + np.full((200, 512, 512), -1000, dtype=np.int16).tobytes()
            # Reading and checking the scan takes a while, more on a busy machine: tries with a
            # deadline already past measure it (504 from the queue, never run). The first is
            # the slower (the server's first large body and first ITK read): the second counts.
            for _ in range(2):
                started = time.monotonic()
                expired = requests.post(server.url + '/v1/ct/nodules', data=long_scan, timeout=REQUEST_TIMEOUT_S,
                                        headers={'Request-Timeout-Ms': '1'})
                reading_s = time.monotonic() - started
                self.assertEqual(expired.status_code, 504, expired.text)
            # Read again (as long, give or take half), then run for 2 s of the analysis, which
            # takes longer than the reading (9 s against 5 s here on two threads).
            deadline_ms = int(1000 * (1.5 * reading_s + 2))
            late = requests.post(server.url + '/v1/ct/nodules', data=long_scan, timeout=REQUEST_TIMEOUT_S * 2,
                                 headers={'Request-Timeout-Ms': str(deadline_ms)})
            self.assertEqual(late.status_code, 504, late.text)
            started = time.monotonic()
            next_scan = requests.post(server.url + '/v1/ct/nodules', data=phantom_mha(folder).read_bytes(),
                                      timeout=REQUEST_TIMEOUT_S)
            seconds = time.monotonic() - started
            print(f'reading the long scan {reading_s:.1f} s; deadline {deadline_ms} ms; the next scan after '
                  f'its 504: {next_scan.status_code} in {seconds:.1f} s')
            self.assertEqual(next_scan.status_code, 200, next_scan.text)
            self.assertLess(seconds, 10 * TIME_SCALE)
            # The long scan did start, and failed in the runner at its deadline.
            failures = metric_value(server.url, 'dlwpt_inference_failures_total{model="ct_nodules"}')
            self.assertEqual(failures, 1)

    def test_a_full_model_refuses_expect_100_continue_before_the_body(self):
        # A queue of 1 and one instance admit two requests: two clients that send their headers
        # and then stall fill it, whatever the machine's speed.
        with Server('--model', 'nodule=untrained', '--instances', '1', '--max-queue-size', '1',
                    '--io-timeout-s', '60') as server:
            request = ('POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; '
                       'boundary=b\r\nContent-Length: 100000\r\n')
            stalled = [socket.create_connection(('127.0.0.1', server.port), timeout=30) for _ in range(2)]
            try:
                for connection in stalled:
                    connection.sendall((request + '\r\n--b\r\n').encode())
                time.sleep(1.0 * TIME_SCALE)  # both admitted, waiting for their bodies
                asked = raw_exchange(server.port, (request + 'Expect: 100-continue\r\n\r\n').encode(),
                                     timeout_s=10 * TIME_SCALE)
                status_line = asked.split(b'\r\n')[0]
                print(f'Expect: 100-continue to a full model: {status_line!r}')
                self.assertIn(b' 503 ', status_line)
                self.assertIn(b'Retry-After: 1', asked)
            finally:
                for connection in stalled:
                    connection.close()
            # With room again, the same question gets 100 Continue.
            deadline = time.monotonic() + 30 * TIME_SCALE
            while time.monotonic() < deadline:
                asked = raw_exchange(server.port, (request + 'Expect: 100-continue\r\n\r\n').encode(),
                                     timeout_s=2)
                if asked.startswith(b'HTTP/1.1 100 Continue'):
                    break
                time.sleep(0.2)
            self.assertTrue(asked.startswith(b'HTTP/1.1 100 Continue'), asked[:100])

    def test_slow_clients_are_dropped_after_the_io_timeout(self):
        with Server('--model', 'nodule=untrained', '--io-timeout-s', '1') as server:
            with socket.create_connection(('127.0.0.1', server.port), timeout=30) as slow:
                slow.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\n')  # and nothing more
                start = time.monotonic()
                answer = slow.recv(65536)  # the server closes the connection
                waited = time.monotonic() - start
            print(f'a client that stopped sending was dropped after {waited:.1f} s (--io-timeout-s 1)')
            self.assertNotIn(b' 200 ', answer)
            self.assertLess(waited, 10 * TIME_SCALE)
            self.assertEqual(requests.get(server.url + '/v2/health/live', timeout=10).status_code, 200)

    def test_trickling_clients_are_bounded_in_total_time_and_hold_no_thread(self):
        # More trickling clients than HTTP threads, each sending a byte every 0.3 s, well
        # within any per-read timeout: half of them trickle their head, half a body (to the
        # zebra, whose room in its queue they hold meanwhile; the nodule model answers on).
        with Server('--model', 'nodule=untrained', '--model', 'zebra=untrained', '--io-timeout-s', '2',
                    '--http-threads', '8', '--max-waiting-connections', '400', '--max-queue-size', '200') as server:
            heads = [socket.create_connection(('127.0.0.1', server.port), timeout=30) for _ in range(150)]
            bodies = [socket.create_connection(('127.0.0.1', server.port), timeout=30) for _ in range(150)]
            for connection in heads:
                connection.sendall(b'GET /v2/health/live HTTP/1.1\r\n')
            for connection in bodies:
                connection.sendall(b'PUT /image HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n')
            started = time.monotonic()
            health_s, books, answered = [], [], {}
            while time.monotonic() - started < 8 * TIME_SCALE and len(answered) < 300:
                for connection in heads + bodies:
                    if connection in answered:
                        continue
                    if select.select([connection], [], [], 0)[0]:  # the server answered, or closed
                        try:
                            line = connection.recv(4096).split(b'\r\n')[0]
                        except ConnectionResetError:  # closed with the trickled bytes unread
                            line = b''
                        answered[connection] = (time.monotonic() - started, line)
                    else:
                        try:
                            connection.sendall(b'X' if connection in heads else b'0')
                        except ConnectionResetError:  # closed with the trickled bytes unread
                            answered[connection] = (time.monotonic() - started, b'')
                asked = time.monotonic()
                self.assertEqual(requests.get(server.url + '/v2/health/ready', timeout=5).status_code, 200)
                health_s.append(time.monotonic() - asked)
                books.append(books_client(server.url, book_chunk()).status_code)
                time.sleep(0.3)
            for connection in heads + bodies:
                connection.close()
            seconds = [at for at, _ in answered.values()]
            print(f'300 trickling clients (--io-timeout-s 2, 8 HTTP threads): {len(answered)} cut off after '
                  f'{min(seconds, default=0):.1f}-{max(seconds, default=0):.1f} s, answers '
                  f'{collections.Counter(line for _, line in answered.values()).most_common(3)}; meanwhile health '
                  f'checks took at most {max(health_s) * 1000:.0f} ms ({len(health_s)}), the book\'s client got {set(books)}')
            self.assertEqual(set(books), {200})
            self.assertLess(max(health_s), 1.0 * TIME_SCALE)
            # Each was cut off once its head, or its body of 100 bytes, took longer than the
            # io timeout (2 s), however steadily it sent.
            self.assertEqual(len(answered), 300)
            self.assertGreater(min(seconds), 1.5)
            self.assertLess(max(seconds), 4 * TIME_SCALE)
            self.assertEqual({line for _, line in answered.values()}, {b''})  # closed, as nginx does

    def test_heads_that_declare_much_or_bend_http_cost_nothing_and_get_their_status(self):
        def rss_mb(pid):
            status = pathlib.Path(f'/proc/{pid}/status').read_text()
            return int(re.search(r'VmRSS:\s+(\d+)', status).group(1)) / 1024

        def status_lines(data):
            return re.findall(rb'HTTP/1\.[01] (\d+) ', raw_exchange(server.port, data, 5))

        started = time.monotonic()
        with Server('--model', 'nodule=untrained', '--max-queue-size', '300') as server:
            # Answers at once once it says it listens (its 256 threads have started).
            self.assertEqual(requests.get(server.url + '/v2/health/live', timeout=10).status_code, 200)
            first_s = time.monotonic() - started
            before = rss_mb(server.process.pid)
            # Heads that declare 64 MiB bodies and send one byte: memory comes with the bytes.
            declared = [socket.create_connection(('127.0.0.1', server.port), timeout=30) for _ in range(50)]
            for connection in declared:
                connection.sendall(b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\n'
                                   b'Content-Length: 67108864\r\n\r\nx')
            asked = time.monotonic()
            self.assertEqual(requests.get(server.url + '/v2/health/live', timeout=10).status_code, 200)
            health_s = time.monotonic() - asked
            # A chunk-size line that never ends (extensions), and endless trailers.
            endless = socket.create_connection(('127.0.0.1', server.port), timeout=30)
            endless.sendall(b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;')
            try:
                for _ in range(64):  # up to 16 MiB
                    endless.sendall(b'a=b;' * 65536)
            except OSError:
                pass  # refused and closed
            endless_answer = endless.recv(4096).split(b'\r\n')[0]
            endless.close()
            grown = rss_mb(server.process.pid) - before
            for connection in declared:
                connection.close()
            print(f'first answer {first_s:.2f} s after start; 50 heads declaring 64 MiB: health check in '
                  f'{health_s * 1000:.0f} ms; an endless chunk line: {endless_answer!r}; RSS +{grown:.0f} MB')
            self.assertLess(health_s, 1.0 * TIME_SCALE)
            self.assertLess(grown, 100)
            self.assertIn(b' 400 ', endless_answer)
            # HTTP/1.0 with Transfer-Encoding: faulty framing, refused and closed (RFC 9112, 6.1).
            self.assertEqual(status_lines(b'POST /v2/models/nodule/infer HTTP/1.0\r\nConnection: keep-alive\r\n'
                                          b'Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'
                                          b'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'), [b'400'])
            # No 100 Continue to an HTTP/1.0 client; Host required once in HTTP/1.1; bare LF,
            # garbage and unknown methods; the absolute form is served.
            expect_10 = raw_exchange(server.port, b'POST /v2/models/nodule/infer HTTP/1.0\r\nExpect: 100-continue\r\n'
                                                  b'Content-Length: 2\r\n\r\n{}', 5)
            self.assertNotIn(b'100 Continue', expect_10)
            self.assertEqual(status_lines(b'GET /v2 HTTP/1.1\r\n\r\n'), [b'400'])
            self.assertEqual(status_lines(b'GET /v2 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n'), [b'400'])
            self.assertEqual(status_lines(b'GET /v2 HTTP/1.1\nHost: x\n\n'), [b'400'])
            self.assertEqual(status_lines(b'BAD REQUEST LINE\r\n\r\n'), [b'400'])
            self.assertEqual(status_lines(b'FOO /v2 HTTP/1.1\r\nHost: x\r\n\r\n'), [b'501'])
            self.assertEqual(status_lines(b'GET http://x/v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'), [b'200'])
            # A client-chosen name is echoed short.
            long_name = requests.get(server.url + '/v2/models/' + 'n' * 5000, timeout=10)
            self.assertEqual(long_name.status_code, 404)
            self.assertLess(len(long_name.content), 300)

    def test_sigterm_while_a_body_still_arrives_says_a_request_went_unanswered(self):
        server = Server('--model', 'nodule=untrained', '--drain-timeout-ms', '1000')
        try:
            with socket.create_connection(('127.0.0.1', server.port), timeout=30) as slow:
                slow.sendall(b'POST /v2/models/nodule/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{')
                time.sleep(0.3)
                server.process.send_signal(signal.SIGTERM)
                status = server.stop(timeout_s=12)
            self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1, server.errors())
            self.assertIn('drain timeout passed with requests still running', server.errors())
        finally:
            server.stop()

    def test_pipelined_requests_and_half_closed_clients_get_every_answer(self):
        with Server('--model', 'nodule=untrained') as server:
            chunk = book_chunk()
            meta = json.dumps({'shape': list(chunk.shape)}).encode()
            blob = bytes(bytearray(chunk.numpy()))
            form = (b'--b\r\nContent-Disposition: form-data; name="meta"\r\n\r\n' + meta +
                    b'\r\n--b\r\nContent-Disposition: form-data; name="blob"\r\n\r\n' + blob + b'\r\n--b--\r\n')
            predict = (b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n'
                       b'Content-Length: %d\r\n\r\n' % len(form)) + form
            pipelined = (b'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n' + predict +
                         b'GET /v2/models/nodule HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            with socket.create_connection(('127.0.0.1', server.port), timeout=30) as connection:
                started = time.monotonic()
                connection.sendall(pipelined)
                connection.shutdown(socket.SHUT_WR)  # and half-closed: the answers still come
                received = b''
                while chunk_ := connection.recv(65536):
                    received += chunk_
                seconds = time.monotonic() - started
            statuses = re.findall(rb'HTTP/1\.1 (\d+) ', received)
            print(f'three pipelined requests, then a half-close: {statuses} in {seconds:.2f} s')
            self.assertEqual(statuses, [b'200', b'200', b'200'])
            self.assertLess(seconds, 5 * TIME_SCALE)  # not after a keep-alive timeout
            self.assertIn(b'"prob_malignant"', received)
            self.assertLess(received.index(b'"prob_malignant"'), received.index(b'"platform"'))  # in order

    def test_int8_zebra_equals_zebraify_int8_calibrated_alike(self):
        with tempfile.TemporaryDirectory() as folder:
            from PIL import Image  # noqa: PLC0415
            calibration = pathlib.Path(folder) / 'calibration'
            calibration.mkdir()
            rng = np.random.default_rng(5)
            for i, (height, width) in enumerate([(96, 128), (128, 96)]):
                pixels = (rng.random((height, width, 3)) * 64 + np.linspace(0, 190, width)[None, :, None])
                Image.fromarray(pixels.astype(np.uint8)).save(calibration / f'sample{i}.png')
            picture = HORSE if HORSE and HORSE.exists() else calibration / 'sample0.png'
            zebra = pathlib.Path(folder) / 'zebra.png'
            local = subprocess.run([str(ZEBRAIFY), '--weights', str(ZEBRA), '--threads', '1', '--precision', 'int8',
                                    '--calibrate-on', str(calibration), str(picture), '--output', str(zebra)],
                                   timeout=REQUEST_TIMEOUT_S, capture_output=True, text=True)
            if local.returncode != 0 and 'int8' in local.stderr and 'use float32' in local.stderr:
                self.skipTest('int8 does not run here: ' + local.stderr.strip().splitlines()[-1])
            self.assertEqual(local.returncode, 0, local.stderr)
            with Server('--model', f'zebra={ZEBRA}', '--precision', 'int8', '--calibrate-on', str(calibration)) as server:
                self.assertIn('int8', server.errors())  # the model's description
                response = requests.put(server.url + '/image', data=picture.read_bytes(), timeout=REQUEST_TIMEOUT_S,
                                        headers={'Accept': 'image/png'})
            self.assertEqual(response.status_code, 200, response.text)
            served = np.asarray(Image.open(io.BytesIO(response.content)).convert('RGB'), dtype=np.float64)
            expected = np.asarray(Image.open(zebra).convert('RGB'), dtype=np.float64)
            self.assertEqual(served.shape, expected.shape)
            # The same generator, calibrated on the same pictures scaled the same way.
            close_within(served, expected, 0, 0, 'int8 PUT /image against zebraify --precision int8, grey levels')

    def test_bad_command_lines_exit_2_with_a_reason(self):
        with tempfile.TemporaryDirectory() as folder:
            from PIL import Image  # noqa: PLC0415
            picture = pathlib.Path(folder) / 'picture.png'
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
            self.check_bad_command_lines(picture)

    def check_bad_command_lines(self, picture):
        cases = [
            (['--model', 'zebra=untrained', '--precision', 'int8'], '--precision int8 needs --calibrate-on'),
            (['--model', 'nodule=untrained', '--precision', 'int8', '--calibrate-on', str(picture)],
             'int8 serves CycleGAN generators only: nodule is a LunaModel'),
            (['--model', 'zebra=untrained', '--calibrate-on', str(picture)], '--calibrate-on is for --precision int8'),
            ([], 'give at least one --model'),
            (['--model', 'nodule'], 'expected NAME=ARCHIVE'),
            (['--model', 'other=untrained'], 'must be named zebra, nodule or segmentation'),
            (['--model', f'nodule={REFERENCES / "missing.pt"}'], 'missing.pt'),
            (['--model', f'nodule={NODULE}', '--model', f'nodule={NODULE}'], 'given twice'),
            (['--model', 'zebra=untrained', '--max-batch-size', '0'], '--max-batch-size must be positive'),
            (['--model', 'zebra=untrained', '--host', '203.0.113.7'], 'cannot listen on 203.0.113.7'),
        ]
        for arguments, reason in cases:
            result = subprocess.run([str(SERVE), '--port', '0', *arguments], capture_output=True,
                                    timeout=START_TIMEOUT_S, text=True)
            self.assertEqual(result.returncode, 2, (arguments, result.stderr))
            self.assertIn(reason, result.stderr.strip().splitlines()[-1], arguments)


if __name__ == '__main__':
    unittest.main(verbosity=2)
