#!/usr/bin/env python3
"""Fetches the book's public files and converts its trained checkpoints for the C++ models.

Downloads from the book's GitHub repository (deep-learning-with-pytorch/dlwpt-code, at a
pinned commit), or takes the same paths from a local mirror with --from, every file listed in
tools/dlwpt_files.tsv: the CycleGAN weights data/p1ch2/horse2zebra_0.4.0.pth, the horse photo,
the part-2 U-Net and LunaModel checkpoints, the sample CT series and the LUNA annotations. Each
file is verified by its git blob id (`git hash-object`); a mismatching download is removed and
reported. Files already present and verified are not fetched again.

Then converts the checkpoints into TorchScript archives (tools/convert.py) in --weights:
horse2zebra.pt, segmentation.pt and classifier.pt.

Exit status: 0 when every requested file is present and verified, 1 otherwise.
"""

import argparse
import hashlib
import pathlib
import shutil
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import convert  # noqa: E402
from atomic import atomic_path  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPOSITORY = 'deep-learning-with-pytorch/dlwpt-code'
COMMIT = 'd6c0210143daa133bbdeddaffc8993b1e17b5174'
DEFAULT_BASE_URL = f'https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/'
MANIFEST = pathlib.Path(__file__).resolve().parent / 'dlwpt_files.tsv'

# Checkpoint path in the repository -> converted archive name in the weights folder.
CONVERSIONS = {
    'data/p1ch2/horse2zebra_0.4.0.pth': 'horse2zebra.pt',
    'data/part2/models/seg_2020-01-26_19.45.12_w4d3c1-bal_1_nodupe-label_pos-d1_fn8-adam.best.state':
        'segmentation.pt',
    'data/part2/models/cls_2020-02-06_14.16.55_final-nodule-nonnodule.best.state':
        'classifier.pt',
}

CHUNK = 1 << 20


class FetchError(Exception):
    pass


def read_manifest(path):
    """[(blob id, size, path)] from a manifest (blob id, size and path, tab-separated)."""
    entries = []
    for line in pathlib.Path(path).read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            blob, size, name = line.split('\t')
            entries.append((blob, int(size), name))
    return entries


def git_blob_id(path):
    """The id git gives the file's content: sha1 of 'blob <size>\\0' and the bytes."""
    digest = hashlib.sha1(f'blob {path.stat().st_size}\0'.encode())
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def verified(path, blob, size):
    return path.is_file() and path.stat().st_size == size and git_blob_id(path) == blob


def download(url, target, size):
    """Streams `url` into `target` through a temporary file, with a progress line."""
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        with atomic_path(target) as partial, urllib.request.urlopen(url, timeout=60) as response, \
                open(partial, 'wb') as out:
            done = 0
            for block in iter(lambda: response.read(CHUNK), b''):
                out.write(block)
                done += len(block)
                if sys.stderr.isatty():
                    rate = done / max(time.time() - start, 1e-3)
                    eta = (size - done) / rate if rate and size >= done else 0
                    print(f'\r  {done / 1e6:7.1f} / {size / 1e6:.1f} MB, ETA {eta:4.0f} s',
                          end='', file=sys.stderr)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    except OSError as error:
        raise FetchError(f'cannot download {url}: {error}') from error


def fetch(entries, data_dir, base_url=None, mirror=None):
    """Makes each file present and verified under data_dir (or finds it in the mirror);
    returns {path: local file} of the good ones and the list of failures."""
    found, failures = {}, []
    for index, (blob, size, name) in enumerate(entries, 1):
        label = f'[{index}/{len(entries)}] {name}'
        local = (mirror or data_dir) / name
        try:
            if verified(local, blob, size):
                print(f'{label}: present, verified')
            elif mirror:
                raise FetchError(f'{local} is missing from the mirror or differs from '
                                 f'blob {blob}')
            else:
                print(f'{label}: downloading {size / 1e6:.1f} MB')
                download(base_url + urllib.parse.quote(name), local, size)
                if not verified(local, blob, size):
                    actual = git_blob_id(local)
                    local.unlink()
                    raise FetchError(f'{name}: the download has blob id {actual}, expected '
                                     f'{blob}; removed it')
                print(f'{label}: verified')
            found[name] = local
        except FetchError as error:
            print(f'{label}: FAILED: {error}', file=sys.stderr)
            failures.append(name)
    return found, failures


def convert_checkpoints(found, weights_dir):
    weights_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for name, archive_name in CONVERSIONS.items():
        if name in found:
            try:
                convert.convert_checkpoint(found[name], weights_dir / archive_name)
            except (OSError, ValueError, RuntimeError, KeyError) as error:
                print(f'convert {name}: FAILED: {error}', file=sys.stderr)
                failures.append(name)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--from', dest='mirror', type=pathlib.Path,
                        help='take the files from this local mirror of the repository '
                             '(e.g. ../shared/dlwpt) instead of downloading')
    parser.add_argument('--data', type=pathlib.Path, default=ROOT / 'data',
                        help='where downloads go (default: %(default)s)')
    parser.add_argument('--weights', type=pathlib.Path, default=ROOT / 'pretrained',
                        help='where converted archives go (default: %(default)s)')
    parser.add_argument('--base-url', default=DEFAULT_BASE_URL,
                        help='download from this address (default: the pinned commit on GitHub)')
    parser.add_argument('--manifest', type=pathlib.Path, default=MANIFEST,
                        help='the files to fetch (default: %(default)s)')
    parser.add_argument('--only', nargs='*', metavar='PATH_PREFIX',
                        help='fetch only the files whose path starts with one of these')
    parser.add_argument('--no-convert', action='store_true',
                        help='do not convert the checkpoints')
    args = parser.parse_args()

    entries = read_manifest(args.manifest)
    if args.only:
        entries = [e for e in entries if any(e[2].startswith(p) for p in args.only)]
    if args.mirror and not args.mirror.is_dir():
        sys.exit(f'fetch: the mirror {args.mirror} is not a folder')
    base_url = args.base_url if args.base_url.endswith('/') else args.base_url + '/'
    found, failures = fetch(entries, args.data, base_url, args.mirror)
    if not args.no_convert:
        failures += convert_checkpoints(found, args.weights)
    print(f'fetch: {len(found)} of {len(entries)} files present and verified'
          + (f', {len(failures)} problems' if failures else ''))
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
