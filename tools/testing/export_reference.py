#!/usr/bin/env python3
"""Writes the reference cases the C++ parity tests check the native models against.

For each case: `<case>.pt`, the Python reference model (seeded random weights, BatchNorm
statistics perturbed so that eval-mode BatchNorm is not the identity) traced and saved with its
configuration; `<case>.io.pt`, tensors `input_<i>` and the eager Python outputs for them
(`output_<i>`, or `logits_<i>` and `probabilities_<i>` for LunaModel). Also `init_<model>.pt`,
the book's seeded weight initialisation, and with --dlwpt the book's real checkpoints converted,
with the real `cls_val_example.pt` chunk as a LunaModel input.
"""

import argparse
import pathlib
import sys
import time

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[1])]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: the same kernels as the C++ apps it is compared with.
use_app_kernels()

import torch  # noqa: E402

import archive  # noqa: E402
import convert  # noqa: E402
from reference_models import BOOK_SEGMENTATION_CONFIG, build_model  # noqa: E402

INIT_SEED = 20200126

# name: (model class, options, input shapes, input kind)
CASES = {
    'cyclegan_default': ('ResNetGenerator', {},
                         [(1, 3, 256, 256), (1, 3, 160, 224), (2, 3, 96, 128)], 'image'),
    'cyclegan_small': ('ResNetGenerator', dict(ngf=8, n_blocks=2),
                       [(1, 3, 64, 64), (3, 3, 37, 53)], 'image'),
    'cyclegan_ngf32': ('ResNetGenerator', dict(ngf=32), [(1, 3, 64, 96)], 'image'),
    'unet_book': ('UNetWrapper', BOOK_SEGMENTATION_CONFIG,
                  [(1, 7, 512, 512), (2, 7, 75, 101)], 'normal'),
    'unet_upsample': ('UNetWrapper', dict(in_channels=3, n_classes=2, depth=3, wf=3, padding=True,
                                          batch_norm=True, up_mode='upsample'),
                      [(1, 3, 64, 64), (2, 3, 45, 61)], 'normal'),
    'unet_depth4': ('UNetWrapper', dict(in_channels=8, n_classes=1, depth=4, wf=3, padding=True,
                                        batch_norm=True, up_mode='upconv'),
                    [(1, 8, 128, 128), (1, 8, 100, 140)], 'normal'),
    'unet_nopad': ('UNetWrapper', dict(in_channels=1, n_classes=2, depth=3, wf=3, padding=False,
                                       batch_norm=False, up_mode='upconv'),
                   [(1, 1, 92, 92), (2, 1, 100, 132)], 'normal'),
    'luna': ('LunaModel', {}, [(1, 1, 32, 48, 48), (8, 1, 32, 48, 48)], 'normal'),
}

INIT_CASES = {
    'init_LunaModel': ('LunaModel', {}),
    'init_UNetWrapper': ('UNetWrapper', BOOK_SEGMENTATION_CONFIG),
}


def perturb_batchnorm(model, generator):
    """Gives every BatchNorm non-trivial affine parameters and running statistics."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            with torch.no_grad():
                module.weight.copy_(1 + 0.1 * torch.randn(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,),
                                                                   generator=generator)))


def make_input(shape, kind, generator):
    if kind == 'image':  # RGB in [0, 1], as the book's ToTensor gives
        return torch.rand(shape, generator=generator)
    return torch.randn(shape, generator=generator)


def output_tensors(model_name, outputs, index):
    if model_name == 'LunaModel':
        logits, probabilities = outputs
        return {f'logits_{index}': logits, f'probabilities_{index}': probabilities}
    return {f'output_{index}': outputs}


def export_case(out_dir, name, model_name, options, shapes, kind, seed):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(model_name, **options)
    perturb_batchnorm(model, generator)
    model.eval()
    inputs = [make_input(shape, kind, generator) for shape in shapes]
    tensors = {}
    with torch.no_grad():
        for index, x in enumerate(inputs):
            tensors[f'input_{index}'] = x
            tensors.update(output_tensors(model_name, model(x), index))
    archive.save_model_archive(model, inputs[0], out_dir / f'{name}.pt', model_name, options)
    archive.save_tensors(tensors, out_dir / f'{name}.io.pt')


def export_init(out_dir, name, model_name, options):
    torch.manual_seed(INIT_SEED)
    model = build_model(model_name, **options)
    archive.save_tensors(model.state_dict(), out_dir / f'{name}.pt')


def export_scripted(out_dir, seed):
    """`luna_scripted.pt`: a LunaModel saved by torch.jit.script rather than traced, and
    `luna_scripted.state.pt`, its state_dict, to check the loader on scripted archives."""
    torch.manual_seed(seed)
    model = build_model('LunaModel')
    perturb_batchnorm(model, torch.Generator().manual_seed(seed))
    scripted = torch.jit.script(model.eval())
    torch.jit.save(scripted, str(out_dir / 'luna_scripted.pt'),
                   _extra_files={archive.CONFIG_FILE: archive.config_text('LunaModel', {})})
    archive.save_tensors(model.state_dict(), out_dir / 'luna_scripted.state.pt')


class BookZebraWrapper(torch.nn.Module):
    """A traced wrapper as the book's C++ chapter uses: the generator held as `model`, its
    forward `model(x * 255) / 2 + 0.5` on a [0, 1] input."""

    def __init__(self, generator):
        super().__init__()
        self.model = generator

    def forward(self, x):
        return self.model(x * 255) / 2 + 0.5


def export_book_wrapper(out_dir, seed):
    """`cyclegan_book_wrapper.pt`: a small generator in the book's traced wrapper, saved
    without a configuration, as the book's archive is."""
    torch.manual_seed(seed)
    wrapper = BookZebraWrapper(build_model('ResNetGenerator', ngf=8, n_blocks=2)).eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, torch.rand(1, 3, 64, 64))
    torch.jit.save(traced, str(out_dir / 'cyclegan_book_wrapper.pt'))


def export_book_checkpoints(out_dir, dlwpt_dir):
    models_dir = dlwpt_dir / 'data' / 'part2' / 'models'
    seg = next(models_dir.glob('seg_*.state'))
    cls = next(models_dir.glob('cls_*.state'))
    convert.convert_checkpoint(seg, out_dir / 'book_seg.pt')
    convert.convert_checkpoint(cls, out_dir / 'book_cls.pt')

    chunk, _label, series_uid, _center = torch.load(dlwpt_dir / 'data' / 'p3ch15' /
                                                    'cls_val_example.pt')
    model_name, options, model = convert.load_checkpoint(cls)
    model.eval()
    x = chunk.unsqueeze(0).float()
    with torch.no_grad():
        tensors = {'input_0': x, **output_tensors(model_name, model(x), 0)}
    archive.save_tensors(tensors, out_dir / 'book_cls.io.pt')
    print(f'book_cls: cls_val_example of series {series_uid}')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, type=pathlib.Path, help='output folder')
    parser.add_argument('--dlwpt', type=pathlib.Path,
                        help="the book's public data files (../shared/dlwpt); skipped if absent")
    parser.add_argument('--seed', type=int, default=1234)
    parser.add_argument('--cases', nargs='*', help='only these cases (default: all)')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    for index, (name, (model_name, options, shapes, kind)) in enumerate(CASES.items()):
        if args.cases and name not in args.cases:
            continue
        start = time.perf_counter()
        export_case(args.out, name, model_name, options, shapes, kind, args.seed + index)
        print(f'{name}: {model_name} {options} {len(shapes)} inputs '
              f'({time.perf_counter() - start:.1f} s)')
    export_scripted(args.out, args.seed)
    print('luna_scripted: LunaModel through torch.jit.script')
    export_book_wrapper(args.out, args.seed)
    print("cyclegan_book_wrapper: a generator in the book's traced wrapper")
    for name, (model_name, options) in INIT_CASES.items():
        export_init(args.out, name, model_name, options)
        print(f'{name}: seeded initialisation, seed {INIT_SEED}')

    if args.dlwpt is None or not (args.dlwpt / 'data').is_dir():
        print(f'book checkpoints: skipped, no data folder at {args.dlwpt}')
    else:
        export_book_checkpoints(args.out, args.dlwpt)
    (args.out / 'COMPLETE').write_text('reference export finished\n')


if __name__ == '__main__':
    main()
