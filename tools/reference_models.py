"""The book's three models in plain PyTorch, the reference the C++ models are tested against.

Written for this project after the architectures of *Deep Learning with PyTorch*: the CycleGAN
ResNet generator (chapter 2), LunaModel (chapter 11) and the U-Net with its wrapper (chapter 13,
after jvanvugt/pytorch-unet). Module and attribute names are those of the book, so that the
state_dict keys equal the book's checkpoints' keys and the C++ models' names.
"""

import inspect
import math

import torch
from torch import nn
import torch.nn.functional as F


# ---------------------------------------------------------------- CycleGAN (chapter 2)

class ResNetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class ResNetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9):
        assert n_blocks >= 0
        super().__init__()
        layers = [nn.ReflectionPad2d(3),
                  nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
                  nn.InstanceNorm2d(ngf),
                  nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2,
                                 padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult * 2),
                       nn.ReLU(True)]
        mult = 2 ** n_downsampling
        layers += [ResNetBlock(ngf * mult) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3,
                                          stride=2, padding=1, output_padding=1, bias=True),
                       nn.InstanceNorm2d(int(ngf * mult / 2)),
                       nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3),
                   nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
                   nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, input):
        return self.model(input)


# ---------------------------------------------------------------- weight init (part 2)

BOOK_INIT_TYPES = {nn.Linear, nn.Conv3d, nn.Conv2d, nn.ConvTranspose2d, nn.ConvTranspose3d}


def init_weights_as_book(module):
    """The book's `_init_weights`, including its normal_(bias, -bound, bound) call."""
    for m in module.modules():
        if type(m) in BOOK_INIT_TYPES:
            nn.init.kaiming_normal_(m.weight.data, a=0, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                _, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight.data)
                bound = 1 / math.sqrt(fan_out)
                nn.init.normal_(m.bias, -bound, bound)


# ---------------------------------------------------------------- LunaModel (chapter 11)

class LunaBlock(nn.Module):
    def __init__(self, in_channels, conv_channels):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(conv_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu2 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(2, 2)

    def forward(self, input_batch):
        block_out = self.relu1(self.conv1(input_batch))
        block_out = self.relu2(self.conv2(block_out))
        return self.maxpool(block_out)


class LunaModel(nn.Module):
    # The book hard-codes BatchNorm3d(1) and Linear(1152, 2), which are what in_channels and
    # chunk_size give for their defaults; derived here so that every option the C++ model
    # takes has its Python twin (the archive round-trip tests load each).
    def __init__(self, in_channels=1, conv_channels=8, chunk_size=(32, 48, 48)):
        super().__init__()
        self.tail_batchnorm = nn.BatchNorm3d(in_channels)
        self.block1 = LunaBlock(in_channels, conv_channels)
        self.block2 = LunaBlock(conv_channels, conv_channels * 2)
        self.block3 = LunaBlock(conv_channels * 2, conv_channels * 4)
        self.block4 = LunaBlock(conv_channels * 4, conv_channels * 8)
        pooled = 1
        for side in chunk_size:
            pooled *= side // 16
        self.head_linear = nn.Linear(conv_channels * 8 * pooled, 2)
        self.head_softmax = nn.Softmax(dim=1)
        init_weights_as_book(self)

    def forward(self, input_batch):
        bn_output = self.tail_batchnorm(input_batch)
        block_out = self.block1(bn_output)
        block_out = self.block2(block_out)
        block_out = self.block3(block_out)
        block_out = self.block4(block_out)
        conv_flat = block_out.view(block_out.size(0), -1)
        linear_output = self.head_linear(conv_flat)
        return linear_output, self.head_softmax(linear_output)


# ---------------------------------------------------------------- U-Net (chapter 13)

class UNetConvBlock(nn.Module):
    def __init__(self, in_size, out_size, padding, batch_norm):
        super().__init__()
        block = [nn.Conv2d(in_size, out_size, kernel_size=3, padding=int(padding)), nn.ReLU()]
        if batch_norm:
            block.append(nn.BatchNorm2d(out_size))
        block += [nn.Conv2d(out_size, out_size, kernel_size=3, padding=int(padding)), nn.ReLU()]
        if batch_norm:
            block.append(nn.BatchNorm2d(out_size))
        self.block = nn.Sequential(*block)

    def forward(self, x):
        return self.block(x)


class UNetUpBlock(nn.Module):
    def __init__(self, in_size, out_size, up_mode, padding, batch_norm):
        super().__init__()
        if up_mode == 'upconv':
            self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2)
        elif up_mode == 'upsample':
            self.up = nn.Sequential(nn.Upsample(mode='bilinear', scale_factor=2),
                                    nn.Conv2d(in_size, out_size, kernel_size=1))
        self.conv_block = UNetConvBlock(in_size, out_size, padding, batch_norm)

    @staticmethod
    def center_crop(layer, target_size):
        _, _, layer_height, layer_width = layer.size()
        diff_y = (layer_height - target_size[0]) // 2
        diff_x = (layer_width - target_size[1]) // 2
        return layer[:, :, diff_y:(diff_y + target_size[0]), diff_x:(diff_x + target_size[1])]

    def forward(self, x, bridge):
        up = self.up(x)
        crop1 = self.center_crop(bridge, up.shape[2:])
        return self.conv_block(torch.cat([up, crop1], 1))


class UNet(nn.Module):
    def __init__(self, in_channels=1, n_classes=2, depth=5, wf=6, padding=False,
                 batch_norm=False, up_mode='upconv'):
        super().__init__()
        assert up_mode in ('upconv', 'upsample')
        prev_channels = in_channels
        self.down_path = nn.ModuleList()
        for i in range(depth):
            self.down_path.append(UNetConvBlock(prev_channels, 2 ** (wf + i), padding, batch_norm))
            prev_channels = 2 ** (wf + i)
        self.up_path = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            self.up_path.append(UNetUpBlock(prev_channels, 2 ** (wf + i), up_mode, padding,
                                            batch_norm))
            prev_channels = 2 ** (wf + i)
        self.last = nn.Conv2d(prev_channels, n_classes, kernel_size=1)

    def forward(self, x):
        blocks = []
        for i, down in enumerate(self.down_path):
            x = down(x)
            if i != len(self.down_path) - 1:
                blocks.append(x)
                x = F.avg_pool2d(x, 2)
        for i, up in enumerate(self.up_path):
            x = up(x, blocks[-i - 1])
        return self.last(x)


class UNetWrapper(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.input_batchnorm = nn.BatchNorm2d(kwargs['in_channels'])
        self.unet = UNet(**kwargs)
        self.final = nn.Sigmoid()
        init_weights_as_book(self)

    def forward(self, input_batch):
        return self.final(self.unet(self.input_batchnorm(input_batch)))


# ---------------------------------------------------------------- configuration

MODEL_CLASSES = {
    'ResNetGenerator': ResNetGenerator,
    'LunaModel': LunaModel,
    'UNetWrapper': UNetWrapper,
}

BOOK_SEGMENTATION_CONFIG = dict(in_channels=7, n_classes=1, depth=3, wf=4, padding=True,
                                batch_norm=True, up_mode='upconv')


def default_options(model_name):
    """The constructor's keyword defaults (UNetWrapper passes its kwargs on to UNet)."""
    constructor = UNet if model_name == 'UNetWrapper' else MODEL_CLASSES[model_name]
    return {name: parameter.default
            for name, parameter in inspect.signature(constructor).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def complete_options(model_name, options):
    """`options` with every option the constructor takes, defaults filled in."""
    unknown = set(options) - set(default_options(model_name))
    if unknown:
        raise ValueError(f'{model_name} takes no option(s) {sorted(unknown)}')
    return {**default_options(model_name), **options}


def build_model(model_name, **options):
    if model_name not in MODEL_CLASSES:
        raise ValueError(f'unknown model {model_name!r}; expected one of {sorted(MODEL_CLASSES)}')
    return MODEL_CLASSES[model_name](**options)
