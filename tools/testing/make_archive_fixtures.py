#!/usr/bin/env python3
"""Writes the small hostile weights archives of the archive fuzz target's seed corpus
(tests/fuzz/regressions/archive_fuzzer/), which the loader tests use as well:

  luna_c2.pt             a valid LunaModel(conv_channels=2) archive with its configuration
  luna_c2_truncated.pt   the same cut in half (an interrupted copy)
  luna_c2_short_record.pt  the same with one tensor's data record cut short, so that the
                         tensor's shape reaches past the bytes that hold its values
  luna_c2_bad_code.pt    the same with TorchScript code that does not compile
  unet_wf12.pt           a small UNetWrapper whose configuration says wf=12 (a 30 GB model)

usage: make_archive_fixtures.py OUT_DIR
"""

import pathlib
import sys
import zipfile

import torch

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from archive import CONFIG_FILE, config_text, save_model_archive  # noqa: E402
from reference_models import build_model  # noqa: E402


def rewrite_zip(source, target, change=lambda name, data: data):
    """Copies a zip entry by entry, compressed and without the optional debug records (to keep
    the corpus small); `change(name, bytes)` returns the bytes to write."""
    with zipfile.ZipFile(source) as reader, \
            zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as writer:
        for info in reader.infolist():
            if not info.filename.endswith('.debug_pkl'):
                writer.writestr(info.filename, change(info.filename, reader.read(info.filename)))


def largest_data_record(path):
    with zipfile.ZipFile(path) as archive:
        records = [info for info in archive.infolist() if '/data/' in info.filename]
        return max(records, key=lambda info: info.file_size).filename


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith('-'):
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    luna_options = dict(in_channels=1, conv_channels=2)
    traced = out / 'luna_c2.pt.tmp'
    luna = out / 'luna_c2.pt'
    model = build_model('LunaModel', **luna_options)
    save_model_archive(model, torch.zeros(1, 1, 32, 48, 48), traced, 'LunaModel', luna_options)
    rewrite_zip(traced, luna)
    traced.unlink()

    data = luna.read_bytes()
    (out / 'luna_c2_truncated.pt').write_bytes(data[:len(data) // 2])

    record = largest_data_record(luna)
    rewrite_zip(luna, out / 'luna_c2_short_record.pt',
                lambda name, data: data[:len(data) // 2] if name == record else data)

    def break_code(name, data):
        if '/code/' in name and name.endswith('.py'):
            return data.replace(b'def forward(', b'def forward(((')
        return data
    rewrite_zip(luna, out / 'luna_c2_bad_code.pt', break_code)

    unet_options = dict(in_channels=7, n_classes=1, depth=2, wf=1, padding=True,
                        batch_norm=True, up_mode='upconv')
    unet = out / 'unet_small.pt.tmp'
    save_model_archive(build_model('UNetWrapper', **unet_options), torch.zeros(1, 7, 8, 8),
                       unet, 'UNetWrapper', unet_options)
    huge = config_text('UNetWrapper', dict(unet_options, wf=12)).encode()
    rewrite_zip(unet, out / 'unet_wf12.pt',
                lambda name, data: huge if name.endswith('/extra/' + CONFIG_FILE) else data)
    unet.unlink()


if __name__ == '__main__':
    main()
