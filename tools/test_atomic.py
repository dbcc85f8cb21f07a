"""Tests of atomic_path: a file appears whole under its name, or not at all."""
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from atomic import atomic_path  # noqa: E402


class AtomicPathTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.folder.name)

    def tearDown(self):
        self.folder.cleanup()

    def test_a_finished_write_replaces_the_file_and_keeps_the_extension(self):
        target = self.root / 'weights.pt'
        target.write_bytes(b'old')
        with atomic_path(target) as temporary:
            self.assertEqual(temporary.suffix, '.pt')
            self.assertEqual(temporary.parent, self.root)
            temporary.write_bytes(b'new')
            self.assertEqual(target.read_bytes(), b'old')
        self.assertEqual(target.read_bytes(), b'new')
        self.assertEqual(sorted(p.name for p in self.root.iterdir()), ['weights.pt'])

    def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
        target = self.root / 'weights.pt'
        target.write_bytes(b'old')
        with self.assertRaises(RuntimeError):
            with atomic_path(target) as temporary:
                temporary.write_bytes(b'half')
                raise RuntimeError('disk full')
        self.assertEqual(target.read_bytes(), b'old')
        self.assertEqual(sorted(p.name for p in self.root.iterdir()), ['weights.pt'])

    def test_two_writers_get_different_temporaries(self):
        target = self.root / 'a.csv'
        with atomic_path(target) as first, atomic_path(target) as second:
            self.assertNotEqual(first, second)
            first.write_text('1')
            second.write_text('2')
        self.assertEqual(target.read_text(), '1')  # the last rename wins whole


if __name__ == '__main__':
    unittest.main()
