"""Tests of tools/fetch.py against a local HTTP server on the loopback address."""

import contextlib
import functools
import hashlib
import http.server
import io
import pathlib
import sys
import tempfile
import threading
import unittest

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
import fetch  # noqa: E402
from reference_models import build_model  # noqa: E402

GENERATOR_PATH = 'data/p1ch2/horse2zebra_0.4.0.pth'


def blob_id(data):
    return hashlib.sha1(f'blob {len(data)}\0'.encode() + data).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class FetchTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        root = pathlib.Path(self.folder.name)
        self.served, self.data, self.weights = root / 'served', root / 'data', root / 'weights'
        # A small generator checkpoint under the real name, as a legacy pickle like the book's,
        # a file with a space in its path, and a file the server corrupts.
        generator = pathlib.Path(self.served / GENERATOR_PATH)
        generator.parent.mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(build_model('ResNetGenerator', ngf=4, n_blocks=1).state_dict(), generator,
                   _use_new_zipfile_serialization=False)
        spaced = self.served / 'data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083/000000.dcm'
        spaced.parent.mkdir(parents=True)
        spaced.write_bytes(b'not really DICOM' * 100)
        self.entries = [(fetch.git_blob_id(generator), generator.stat().st_size, GENERATOR_PATH),
                        (blob_id(spaced.read_bytes()), spaced.stat().st_size,
                         'data/p1ch4/volumetric-dicom/2-LUNG 3.0  B70f-04083/000000.dcm')]
        handler = functools.partial(QuietHandler, directory=str(self.served))
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f'http://127.0.0.1:{self.server.server_address[1]}/'

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.folder.cleanup()

    def quiet_fetch(self, entries, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return fetch.fetch(entries, self.data, **kwargs)

    def test_downloads_verifies_and_converts(self):
        found, failures = self.quiet_fetch(self.entries, base_url=self.base_url)
        self.assertEqual(failures, [])
        self.assertEqual(sorted(found), sorted(e[2] for e in self.entries))
        for blob, _, name in self.entries:
            self.assertEqual(fetch.git_blob_id(self.data / name), blob)
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(fetch.convert_checkpoints(found, self.weights), [])
        name, options = archive.read_model_config(self.weights / 'horse2zebra.pt')
        self.assertEqual((name, options['ngf'], options['n_blocks']), ('ResNetGenerator', '4', '1'))

    def test_a_mismatching_download_is_rejected_and_removed(self):
        blob, size, name = self.entries[1]
        wrong = [('0' * 40, size, name)]
        _, failures = self.quiet_fetch(wrong, base_url=self.base_url)
        self.assertEqual(failures, [name])
        self.assertFalse((self.data / name).exists())
        self.assertEqual(list((self.data / name).parent.glob('.*.partial-*')), [])

    def test_a_missing_file_fails_without_leftovers(self):
        _, failures = self.quiet_fetch([(self.entries[0][0], 10, 'data/absent.bin')],
                                       base_url=self.base_url)
        self.assertEqual(failures, ['data/absent.bin'])
        self.assertFalse((self.data / 'data/absent.bin').exists())
        self.assertEqual(list((self.data / 'data').glob('.*.partial-*')), [])

    def test_verified_files_are_not_fetched_again(self):
        self.quiet_fetch(self.entries, base_url=self.base_url)
        self.server.shutdown()  # a second fetch must not need the server
        found, failures = self.quiet_fetch(self.entries, base_url=self.base_url)
        self.assertEqual((len(found), failures), (2, []))

    def test_mirror_is_verified_in_place(self):
        found, failures = self.quiet_fetch(self.entries, mirror=self.served)
        self.assertEqual(failures, [])
        self.assertEqual(found[GENERATOR_PATH], self.served / GENERATOR_PATH)
        self.assertFalse(self.data.exists())
        (self.served / GENERATOR_PATH).write_bytes(b'tampered')
        _, failures = self.quiet_fetch(self.entries, mirror=self.served)
        self.assertEqual(failures, [GENERATOR_PATH])

    def test_manifest_lists_the_cyclegan_weights(self):
        entries = fetch.read_manifest(fetch.MANIFEST)
        self.assertIn(('ce10268a67fba8227bd42a071e17eef1b358fa2b', 45519250, GENERATOR_PATH),
                      entries)
        self.assertEqual(len([e for e in entries if e[2].endswith('.dcm')]), 99)


if __name__ == '__main__':
    unittest.main()
