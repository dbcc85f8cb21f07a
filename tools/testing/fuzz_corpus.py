#!/usr/bin/env python3
"""Writes the seed and regression inputs of the scan fuzz targets (tests/fuzz/regressions/
metaimage_fuzzer and dicom_fuzzer): small sound scans in every form the readers take, and
the inputs of every defect they once let through (names start with "defect_"). Each file is
under 64 KB. The MetaImage target reads each input as one .mha, and split after its
ElementDataFile line into fuzz.mhd + fuzz.raw (inputs ending in .split).

usage: fuzz_corpus.py [REGRESSIONS_FOLDER]   (default tests/fuzz/regressions)
"""

import argparse
import pathlib
import struct
import sys
import zlib

import numpy as np

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from ct_phantom import phantom  # noqa: E402
from dicom_phantom import dicom_slice, element  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def metaimage_header(dims, element_type='MET_SHORT', data_file='LOCAL', extra=()):
    lines = ['ObjectType = Image', 'NDims = %d' % len(dims), 'BinaryData = True',
             'BinaryDataByteOrderMSB = False', *extra,
             'DimSize = ' + ' '.join(str(d) for d in dims),
             f'ElementType = {element_type}', f'ElementDataFile = {data_file}', '']
    return '\n'.join(lines).encode()


def metaimage_inputs():
    hu = phantom(4, 16, seed=2)  # int16, 2 KB
    raw = hu.astype('<i2').tobytes()
    packed = zlib.compress(raw)
    dims = (16, 16, 4)
    inputs = {
        'phantom.mha': metaimage_header(dims) + raw,
        'phantom.split': metaimage_header(dims, data_file='fuzz.raw') + raw,
        'compressed.mha': metaimage_header(dims, extra=['CompressedData = True',
                                                        f'CompressedDataSize = {len(packed)}']) + packed,
        'compressed_unsized.split': metaimage_header(dims, data_file='fuzz.raw',
                                                     extra=['CompressedData = True']) + packed,
        'float.mha': metaimage_header(dims, 'MET_FLOAT') + hu.astype('<f4').tobytes(),
        'data_at_end.split': metaimage_header(dims, data_file='fuzz.raw',
                                              extra=['HeaderSize = -1']) + b'junk' * 4 + raw,
        'skipped_header.split': metaimage_header(dims, data_file='fuzz.raw',
                                                 extra=['HeaderSize = 16']) + b'junk' * 4 + raw,
        # The defects: MetaIO only warned about each and "read" zeros or uninitialised memory.
        'defect_zlib_truncated.mha': metaimage_header(dims, extra=['CompressedData = True']) + packed[:len(packed) // 2],
        'defect_zlib_garbage.mha': metaimage_header(dims, extra=['CompressedData = True']) +
        packed[:10] + bytes(range(200)) + packed[210:],
        'defect_zlib_too_long.mha': metaimage_header((16, 16, 2), extra=['CompressedData = True']) + packed,
        'defect_short.mha': metaimage_header(dims) + raw[:1000],
        'defect_headersize_past_end.split': metaimage_header(dims, data_file='fuzz.raw',
                                                             extra=['HeaderSize = 100000']) + raw,
        'defect_list_missing.mha': metaimage_header(dims, data_file='LIST') +
        b'fuzz.raw\nabsent1.raw\nabsent2.raw\nabsent3.raw\n',
        'defect_pattern_missing.split': metaimage_header(dims, data_file='slice%02d.raw 1 4 1') + raw,
        'defect_pattern_format.split': metaimage_header(dims, data_file='%s%s%n%n 1 4 1') + raw,
        'defect_pattern_step0.split': metaimage_header(dims, data_file='s%d.raw 1 4 0') + raw,
        'defect_nan.mha': metaimage_header(dims, 'MET_FLOAT') +
        np.where(np.arange(hu.size).reshape(hu.shape) % 97 == 0, np.nan, hu).astype('<f4').tobytes(),
        'defect_huge.mha': metaimage_header((100000, 100000, 100000)) + raw[:64],
        'defect_2d.mha': metaimage_header((16, 16)) + raw[:512],
        'defect_empty.mha': b'',
    }
    # One slice named by a LIST (of the single data file of the split form).
    inputs['list_one_file.split'] = metaimage_header((16, 16, 1), data_file='LIST') + b'fuzz.raw\n'
    return inputs


def dicom_inputs():
    hu = phantom(1, 16, seed=3)[0]
    uid = '1.2.826.0.1.3680043.99.2'
    good = dicom_slice(hu, (-10.0, -12.0, 5.0), uid, 1)
    pixel_start = len(good) - hu.size * 2
    inputs = {f'slice_{syntax}.dcm': dicom_slice(hu, (-10.0, -12.0, 5.0), uid, 1, syntax)
              for syntax in ('explicit-le', 'implicit-le', 'explicit-be')}
    inputs.update({
        'not_dicom.txt': b'scanner notes\n',
        'defect_cut_in_meta.dcm': good[:150],
        'defect_cut_300.dcm': good[:300],
        'defect_cut_in_sequence.dcm': good[:good.index(b'PHANTOM') - 40],
        'defect_cut_in_pixel_data.dcm': good[:pixel_start + 100],
        'defect_cut_before_pixel_data.dcm': good[:pixel_start - 12],
        'defect_pixel_length_short.dcm': good[:pixel_start - 4] + struct.pack('<I', 100) + good[pixel_start:pixel_start + 100],
        'defect_length_past_end.dcm': good[:pixel_start - 4] + struct.pack('<I', 0x7FFFFFF0) + good[pixel_start:],
        'defect_deep_nesting.dcm': good[:good.index(b'\x08\x00\x40\x11')] +
        element((0x0008, 0x1140), 'SQ', None) +
        (struct.pack('<HHI', 0xFFFE, 0xE000, 0xFFFFFFFF) + element((0x0008, 0x1140), 'SQ', None)) * 200,
        'defect_bad_item.dcm': good.replace(b'\xfe\xff\x00\xe0', b'\xfe\xff\x00\xe1', 1),
        'defect_huge_rows.dcm': good.replace(struct.pack('<HH2sHH', 0x28, 0x10, b'US', 2, 16),
                                             struct.pack('<HH2sHH', 0x28, 0x10, b'US', 2, 65535)),
    })
    return inputs


def write(folder, inputs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in inputs.items():
        assert len(data) < 64 * 1024, name
        (folder / name).write_bytes(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', nargs='?', type=pathlib.Path, default=ROOT / 'tests/fuzz/regressions',
                        help='where to write metaimage_fuzzer/ and dicom_fuzzer/ (default %(default)s)')
    root = parser.parse_args().folder
    write(root / 'metaimage_fuzzer', metaimage_inputs())
    write(root / 'dicom_fuzzer', dicom_inputs())


if __name__ == '__main__':
    main()
