#!/usr/bin/env python3
"""Writes small CT series as DICOM Part-10 files, with no DICOM library: the fuzz seeds of the
DICOM reader and test series in every transfer syntax it walks (explicit VR little endian,
implicit VR little endian, explicit VR big endian), with a nested sequence of undefined
length as real scanners write them.

usage: dicom_phantom.py OUT_FOLDER [--slices N] [--size N] [--syntax explicit-le|implicit-le|explicit-be]
"""

import argparse
import pathlib
import struct
import sys

import numpy as np

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from ct_phantom import phantom  # noqa: E402

SYNTAXES = {
    'explicit-le': '1.2.840.10008.1.2.1',
    'implicit-le': '1.2.840.10008.1.2',
    'explicit-be': '1.2.840.10008.1.2.2',
}
CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
LONG_VRS = {'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'}
UNDEFINED = 0xFFFFFFFF


def element(tag, vr, value, syntax='explicit-le'):
    """One data element; `value` is bytes (padded here to an even length) or None for an
    undefined length (a sequence whose items and delimiter follow)."""
    group, number = tag
    big = syntax == 'explicit-be'
    order = '>' if big else '<'
    if value is not None and len(value) % 2:
        value += b'\0' if vr in ('UI', 'OB', 'OW') else b' '
    length = UNDEFINED if value is None else len(value)
    if syntax == 'implicit-le':
        header = struct.pack('<HHI', group, number, length)
    elif vr in LONG_VRS:
        header = struct.pack(order + 'HH2s2xI', group, number, vr.encode(), length)
    else:
        header = struct.pack(order + 'HH2sH', group, number, vr.encode(), length)
    return header + (value or b'')


def item(content, syntax):
    order = '>' if syntax == 'explicit-be' else '<'
    return (struct.pack(order + 'HHI', 0xFFFE, 0xE000, UNDEFINED) + content +
            struct.pack(order + 'HHI', 0xFFFE, 0xE00D, 0))


def sequence_end(syntax):
    order = '>' if syntax == 'explicit-be' else '<'
    return struct.pack(order + 'HHI', 0xFFFE, 0xE0DD, 0)


def text(value):
    return value.encode('ascii')


def unsigned16(value, syntax):
    return struct.pack('>H' if syntax == 'explicit-be' else '<H', value)


def dicom_slice(pixels, position, series_uid, instance, syntax='explicit-le',
                spacing=(0.7, 0.7)):
    """The bytes of one CT slice (int16 HU stored as value - (-1024))."""
    ts = SYNTAXES[syntax]
    instance_uid = f'{series_uid}.{instance}'
    meta_body = b''.join([
        element((0x0002, 0x0001), 'OB', b'\0\1'),
        element((0x0002, 0x0002), 'UI', text(CT_IMAGE_STORAGE)),
        element((0x0002, 0x0003), 'UI', text(instance_uid)),
        element((0x0002, 0x0010), 'UI', text(ts)),
    ])
    meta = element((0x0002, 0x0000), 'UL', struct.pack('<I', len(meta_body))) + meta_body
    rows, columns = pixels.shape
    stored = (pixels.astype(np.int32) + 1024).astype(np.uint16)
    stored = stored.astype('>u2' if syntax == 'explicit-be' else '<u2')
    reference = item(element((0x0008, 0x1150), 'UI', text(CT_IMAGE_STORAGE), syntax) +
                     element((0x0008, 0x1155), 'UI', text(series_uid + '.0'), syntax), syntax)
    data = b''.join([
        element((0x0008, 0x0016), 'UI', text(CT_IMAGE_STORAGE), syntax),
        element((0x0008, 0x0018), 'UI', text(instance_uid), syntax),
        element((0x0008, 0x0060), 'CS', text('CT'), syntax),
        element((0x0008, 0x1140), 'SQ', None, syntax) + reference + sequence_end(syntax),
        element((0x0010, 0x0010), 'PN', text('PHANTOM'), syntax),
        element((0x0020, 0x000D), 'UI', text(series_uid + '.1'), syntax),
        element((0x0020, 0x000E), 'UI', text(series_uid), syntax),
        element((0x0020, 0x0013), 'IS', text(str(instance)), syntax),
        element((0x0020, 0x0032), 'DS', text('\\'.join(f'{v:g}' for v in position)), syntax),
        element((0x0020, 0x0037), 'DS', text('1\\0\\0\\0\\1\\0'), syntax),
        element((0x0028, 0x0002), 'US', unsigned16(1, syntax), syntax),
        element((0x0028, 0x0004), 'CS', text('MONOCHROME2'), syntax),
        element((0x0028, 0x0010), 'US', unsigned16(rows, syntax), syntax),
        element((0x0028, 0x0011), 'US', unsigned16(columns, syntax), syntax),
        element((0x0028, 0x0030), 'DS', text(f'{spacing[0]:g}\\{spacing[1]:g}'), syntax),
        element((0x0028, 0x0100), 'US', unsigned16(16, syntax), syntax),
        element((0x0028, 0x0101), 'US', unsigned16(16, syntax), syntax),
        element((0x0028, 0x0102), 'US', unsigned16(15, syntax), syntax),
        element((0x0028, 0x0103), 'US', unsigned16(0, syntax), syntax),
        element((0x0028, 0x1052), 'DS', text('-1024'), syntax),
        element((0x0028, 0x1053), 'DS', text('1'), syntax),
        element((0x7FE0, 0x0010), 'OW', stored.tobytes(), syntax),
    ])
    return b'\0' * 128 + b'DICM' + meta + data


def write_series(folder, slices, size, syntax='explicit-le', series_uid='1.2.826.0.1.3680043.99.1'):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu = phantom(slices, size, seed=1)
    for index in range(slices):
        (folder / f'{index:04d}.dcm').write_bytes(
            dicom_slice(hu[index], (-100.0, -120.0, 2.5 * index), series_uid, index + 1, syntax))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out', type=pathlib.Path)
    parser.add_argument('--slices', type=int, default=8)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--syntax', choices=sorted(SYNTAXES), default='explicit-le')
    args = parser.parse_args()
    write_series(args.out, args.slices, args.size, args.syntax)


if __name__ == '__main__':
    main()
