"""Tests of export.py: every model exports to a valid ONNX file, and the CycleGAN export runs
in OpenCV's DNN module with PyTorch's output."""
import pathlib
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
import export  # noqa: E402
from reference_models import build_model  # noqa: E402

CASES = {
    'ResNetGenerator': (dict(ngf=8, n_blocks=2), (1, 3, 64, 64)),
    'LunaModel': (dict(), (2, 1, 32, 48, 48)),
    'UNetWrapper': (dict(in_channels=7, n_classes=1, depth=3, wf=2, padding=True, batch_norm=True,
                         up_mode='upconv'), (1, 7, 32, 32)),
}


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.folder.name)

    def tearDown(self):
        self.folder.cleanup()

    def write_archive(self, model_name):
        options, shape = CASES[model_name]
        torch.manual_seed(0)
        model = build_model(model_name, **options).eval()
        path = self.root / f'{model_name}.pt'
        archive.save_model_archive(model, torch.rand(shape), path, model_name, options)
        return path, model, shape

    def test_every_model_exports_to_a_checked_onnx_file(self):
        import onnx
        for model_name in CASES:
            with self.subTest(model_name):
                path, _, _ = self.write_archive(model_name)
                out = self.root / f'{model_name}.onnx'
                name, _ = export.export(path, out)
                self.assertEqual(name, model_name)
                graph = onnx.load(str(out)).graph
                self.assertEqual([i.name for i in graph.input], ['input'])
                self.assertEqual([o.name for o in graph.output], export.OUTPUT_NAMES[model_name])
                self.assertEqual(sorted(p.name for p in self.root.glob('.*')), [])

    def test_the_cyclegan_export_runs_in_opencv_as_in_pytorch(self):
        import cv2
        path, model, _ = self.write_archive('ResNetGenerator')
        out = self.root / 'generator.onnx'
        export.export(path, out, dynamic=False)
        image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = model(image).numpy()
        net = cv2.dnn.readNetFromONNX(str(out))
        net.setInput(image.numpy())
        actual = net.forward()
        difference = float(np.abs(actual - expected).max())
        print(f'OpenCV DNN vs PyTorch on the exported generator: max |difference| = {difference:.2e}')
        # Outputs are tanh values in [-1, 1]: an absolute tolerance fits them.
        self.assertLess(difference, 1e-4)

    def test_a_file_that_is_no_archive_is_reported(self):
        bad = self.root / 'bad.pt'
        bad.write_bytes(b'not an archive')
        with self.assertRaises(RuntimeError):
            export.export(bad, self.root / 'bad.onnx')
        self.assertFalse((self.root / 'bad.onnx').exists())


if __name__ == '__main__':
    unittest.main()
