"""MetaImage (.mhd + .raw) reading and writing with numpy, for the Python reference of the CT
pipeline and for writing test phantoms (uncompressed data only, which is what this project
and LUNA16 write)."""

import pathlib

import numpy as np

ELEMENT_TYPES = {'MET_SHORT': np.int16, 'MET_USHORT': np.uint16, 'MET_UCHAR': np.uint8,
                 'MET_CHAR': np.int8, 'MET_INT': np.int32, 'MET_FLOAT': np.float32,
                 'MET_DOUBLE': np.float64}


def read_mhd(path):
    """(voxels as [index, row, column] = [z, y, x], origin xyz, spacing xyz, 3x3 direction),
    as SimpleITK's GetArrayFromImage, GetOrigin, GetSpacing and GetDirection give them."""
    path = pathlib.Path(path)
    header = {}
    for line in path.read_text(errors='replace').splitlines():
        key, _, value = line.partition('=')
        header[key.strip()] = value.strip()
    if header.get('CompressedData', 'False').lower() == 'true':
        raise ValueError(f'{path}: compressed MetaImage data is not supported here')
    size = [int(v) for v in header['DimSize'].split()]
    dtype = np.dtype(ELEMENT_TYPES[header['ElementType']])
    if header.get('ElementByteOrderMSB', header.get('BinaryDataByteOrderMSB', 'False')) == 'True':
        dtype = dtype.newbyteorder('>')
    data_file = header['ElementDataFile']
    raw = path.with_name(data_file)
    voxels = np.fromfile(raw, dtype=dtype, count=int(np.prod(size))).reshape(size[::-1])
    origin = np.array([float(v) for v in header.get('Offset', header.get('Origin', '0 0 0')).split()])
    spacing = np.array([float(v) for v in header.get('ElementSpacing', '1 1 1').split()])
    # MetaImage stores the direction column by column (TransformMatrix), ITK row by row.
    matrix = header.get('TransformMatrix', '1 0 0 0 1 0 0 0 1')
    direction = np.array([float(v) for v in matrix.split()]).reshape(3, 3).T
    return voxels, origin, spacing, direction


def write_mhd(path, voxels, origin, spacing, direction):
    """Writes [z, y, x] voxels with their geometry as path (.mhd) and a .raw beside it."""
    path = pathlib.Path(path)
    voxels = np.ascontiguousarray(voxels)
    element_type = {v: k for k, v in ELEMENT_TYPES.items()}[voxels.dtype.type]
    raw = path.with_suffix('.raw')
    voxels.astype(voxels.dtype.newbyteorder('<')).tofile(raw)
    matrix = ' '.join(f'{v:.17g}' for v in np.asarray(direction).T.reshape(-1))
    path.write_text('\n'.join([
        'ObjectType = Image', 'NDims = 3', 'BinaryData = True', 'BinaryDataByteOrderMSB = False',
        'CompressedData = False', f'TransformMatrix = {matrix}',
        'Offset = ' + ' '.join(f'{v:.17g}' for v in origin),
        'ElementSpacing = ' + ' '.join(f'{v:.17g}' for v in spacing),
        'DimSize = ' + ' '.join(str(s) for s in voxels.shape[::-1]),
        f'ElementType = {element_type}', f'ElementDataFile = {raw.name}', '']))
