#!/usr/bin/env python3
"""The zebraify viewer in a real X window (Xvfb): the left half of a screenshot is the input,
the right half the zebra that the Python reference pipeline computes; Space shows the original
in its place, S saves, Q quits.

usage: viewer_test.py ZEBRAIFY_BINARY GENERATOR_ARCHIVE
"""

import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

TOOLS = pathlib.Path(__file__).resolve().parents[1] / 'tools'
sys.path[:0] = [str(TOOLS), str(TOOLS / 'testing')]
from blas import use_app_kernels  # noqa: E402

# Before torch loads OpenBLAS: this process computes the reference zebra as the app does.
use_app_kernels()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import archive  # noqa: E402
import zebraify_reference  # noqa: E402
from sample_image import write_png  # noqa: E402

WIDTH, HEIGHT = 96, 64
TIMEOUT = 60


def test_picture():
    """H x W x 3 uint8: gradients with a bright bar, different in each channel."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    picture = np.stack([(x * 255 // WIDTH), (y * 255 // HEIGHT), ((x + y) * 2) % 256], axis=-1)
    picture[20:30, 10:60] = 240
    return picture.astype(np.uint8)


def read_xwd(path):
    """H x W x 3 uint8 from a 24/32-bit ZPixmap XWD screenshot."""
    data = path.read_bytes()
    fields = struct.unpack('>25I', data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = fields[7], fields[11], fields[12], fields[19]
    assert bits_per_pixel == 32, f'unexpected {bits_per_pixel} bits per pixel'
    start = header_size + 12 * ncolors
    pixels = np.frombuffer(data[start:start + height * bytes_per_line], np.uint8)
    pixels = pixels.reshape(height, bytes_per_line)[:, :width * 4].reshape(height, width, 4)
    return pixels[:, :, [2, 1, 0]] if byte_order == 0 else pixels[:, :, [1, 2, 3]]


def free_display():
    for number in range(90, 140):
        if not os.path.exists(f'/tmp/.X{number}-lock'):
            return f':{number}'
    raise RuntimeError('no free X display number')


def wait_for(condition, what):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


def run(*command, env):
    return subprocess.run(command, env=env, capture_output=True, text=True).stdout.strip()


def main():
    binary, generator_archive = sys.argv[1:3]
    for tool in ('Xvfb', 'xdotool', 'xwd'):
        if not shutil.which(tool):
            sys.exit(f'{tool} is missing: install xvfb, xdotool and x11-apps')
    folder = pathlib.Path(tempfile.mkdtemp(prefix='dlwpt-viewer-'))
    display = free_display()
    env = dict(os.environ, DISPLAY=display)
    xvfb = subprocess.Popen(['Xvfb', display, '-screen', '0', '1024x768x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    viewer = None
    try:
        picture = test_picture()
        write_png(folder / 'picture.png', picture)
        _, generator = archive.load_reference_model(generator_archive)
        generator.eval()
        with torch.no_grad():
            expected = zebraify_reference.zebraify(
                generator, torch.from_numpy(picture).permute(2, 0, 1).unsqueeze(0), 0)
        expected = expected[0].permute(1, 2, 0).numpy().astype(int)

        wait_for(lambda: run('xdotool', 'getmouselocation', env=env), 'Xvfb')
        viewer = subprocess.Popen([binary, '--view', str(folder / 'picture.png'), '--size', '0',
                                   '--weights', generator_archive, '-o', str(folder / 'saved')],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        window = wait_for(lambda: run('xdotool', 'search', '--name', 'zebraify', env=env).split(),
                          'the window')[0]
        # The title ends in the conversion time ("... - 0.11 s") once the zebra is shown.
        title = wait_for(lambda: (lambda t: t if re.search(r'\d\.\d\d s', t) else None)(
            run('xdotool', 'getwindowname', window, env=env)), 'the conversion')
        print('window title:', title)
        time.sleep(0.5)  # let the picture be drawn

        def screenshot(name):
            subprocess.run(['xwd', '-silent', '-id', window, '-out', str(folder / name)],
                           env=env, check=True)
            return read_xwd(folder / name).astype(int)

        shot = screenshot('zebra.xwd')
        assert shot.shape == (HEIGHT, 2 * WIDTH, 3), f'window is {shot.shape}, expected pair size'
        left, right = shot[:, :WIDTH], shot[:, WIDTH:]
        left_difference = int(np.abs(left - picture).max())
        right_difference = int(np.abs(right - expected).max())
        print(f'left half vs input: max {left_difference} grey levels; '
              f'right half vs Python zebra: max {right_difference}')
        assert left.std() > 20 and right.std() > 5, 'a half of the window is blank'
        assert left_difference <= 1, 'the left half does not show the input'
        assert right_difference <= 1, 'the right half does not show the zebra'
        assert np.abs(right - left).mean() > 10, 'the right half shows the input, not a zebra'

        run('xdotool', 'mousemove', '--window', window, '10', '10', env=env)
        run('xdotool', 'key', 'space', env=env)
        wait_for(lambda: 'original' in run('xdotool', 'getwindowname', window, env=env),
                 'Space to show the original')
        time.sleep(0.5)
        toggled = screenshot('original.xwd')
        assert np.abs(toggled[:, WIDTH:] - picture).max() <= 1, 'Space did not show the original'

        run('xdotool', 'key', 's', env=env)
        wait_for(lambda: (folder / 'saved' / 'picture_zebra.png').exists(), 'S to save')
        run('xdotool', 'key', 'q', env=env)
        status = viewer.wait(timeout=TIMEOUT)
        print(viewer.stdout.read())
        assert status == 0, f'the viewer exited with {status}'
        print('1 passed, 0 failed')
    finally:
        if viewer and viewer.poll() is None:
            viewer.kill()
        xvfb.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
