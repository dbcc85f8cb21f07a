"""Tests of tools/convert.py: the model and its options read off a checkpoint's tensors, in
both of PyTorch's pickle formats, with the book's checkpoint layouts."""

import pathlib
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import archive  # noqa: E402
import convert  # noqa: E402
from reference_models import build_model, complete_options  # noqa: E402


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self.folder.name)

    def tearDown(self):
        self.folder.cleanup()

    def convert_and_compare(self, model_name, options, state, example, overrides=(),
                            legacy=True):
        """Saves `state` as a checkpoint, converts it, and checks the archive's configuration
        and its outputs against the original model's."""
        torch.manual_seed(0)
        original = build_model(model_name, **options)
        checkpoint = self.dir / 'checkpoint.pth'
        torch.save(state(original), checkpoint, _use_new_zipfile_serialization=not legacy)
        converted = self.dir / 'converted.pt'
        convert.convert_checkpoint(checkpoint, converted, overrides)

        name, text_options = archive.read_model_config(converted)
        self.assertEqual(name, model_name)
        self.assertEqual(text_options, archive.parse_config_text(
            archive.config_text(model_name, options))[1])
        _, reloaded = archive.load_reference_model(converted)
        original.eval()
        reloaded.eval()
        with torch.no_grad():
            expected, actual = original(example), reloaded(example)
        if isinstance(expected, tuple):
            expected, actual = expected[0], actual[0]
        self.assertEqual(float((expected - actual).abs().max()), 0.0)

    def test_plain_legacy_state_dict_of_a_generator(self):
        # horse2zebra_0.4.0.pth is a plain state_dict pickled by PyTorch 0.4.
        self.convert_and_compare('ResNetGenerator', dict(ngf=16, n_blocks=3),
                                 lambda m: m.state_dict(), torch.rand(1, 3, 32, 32))

    def test_generator_with_other_channel_counts(self):
        self.convert_and_compare('ResNetGenerator',
                                 dict(input_nc=1, output_nc=2, ngf=8, n_blocks=0),
                                 lambda m: m.state_dict(), torch.rand(1, 1, 16, 16), legacy=False)

    def test_part2_checkpoint_of_an_upsampling_unet(self):
        options = dict(in_channels=3, n_classes=2, depth=4, wf=2, padding=True,
                       batch_norm=False, up_mode='upsample')
        self.convert_and_compare('UNetWrapper', options,
                                 lambda m: {'model_state': m.state_dict(), 'epoch': 3},
                                 torch.randn(1, 3, 32, 32))

    def test_data_parallel_prefix_and_padding_option(self):
        options = dict(in_channels=2, n_classes=1, depth=2, wf=3, padding=False,
                       batch_norm=True, up_mode='upconv')
        self.convert_and_compare(
            'UNetWrapper', options,
            lambda m: {'model_state': {'module.' + k: v for k, v in m.state_dict().items()}},
            torch.randn(1, 2, 44, 44), overrides=['padding=false'])

    def test_luna_checkpoint(self):
        self.convert_and_compare('LunaModel', {}, lambda m: {'model_state': m.state_dict()},
                                 torch.randn(2, 1, 32, 48, 48))

    def test_unknown_option_is_rejected(self):
        torch.save(build_model('LunaModel').state_dict(), self.dir / 'luna.pth')
        with self.assertRaisesRegex(ValueError, "unknown option 'depth'"):
            convert.load_checkpoint(self.dir / 'luna.pth', ['depth=3'])

    def test_a_file_without_weights_is_rejected(self):
        torch.save({'epoch': 1}, self.dir / 'other.pth')
        with self.assertRaisesRegex(ValueError, 'neither a state_dict nor a checkpoint'):
            convert.load_checkpoint(self.dir / 'other.pth')

    def test_an_unknown_model_is_rejected(self):
        torch.save({'fc.weight': torch.zeros(2, 2)}, self.dir / 'other.pth')
        with self.assertRaisesRegex(ValueError, 'cannot tell the model'):
            convert.load_checkpoint(self.dir / 'other.pth')

    def test_complete_options_rejects_unknown_names(self):
        with self.assertRaisesRegex(ValueError, 'takes no option'):
            complete_options('LunaModel', dict(ngf=3))


if __name__ == '__main__':
    unittest.main()
