#!/usr/bin/env python3
"""A port of the book's chapter 15 request-batching server (p3ch15/request_batching_server.py,
written for Sanic, which is not in Debian and whose asyncio calls Python 3.10 removed) to
aiohttp: the same batching algorithm and constants (a queue of at most 3 requests, batches of
at most 2, a batch run at the latest 1 s after its oldest request arrived, the model run in an
executor thread while the event loop handles connections), the same PUT /image handling (the
picture resized to 228 x 228, the zebra answered as JPEG, 503 "I'm too busy" beyond the
queue). The generator is the Python reference ResNetGenerator from an archive. A peer for
tools/testing/bench_serve.py; not the project's server.

usage: book_batching_server.py ARCHIVE PORT
"""
import asyncio
import functools
import io
import pathlib
import sys

import numpy as np
import PIL.Image
import torch
from aiohttp import web

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from archive import load_reference_model  # noqa: E402

MAX_QUEUE_SIZE = 3
MAX_BATCH_SIZE = 2
MAX_WAIT = 1
MAX_SIZE = 2 ** 22


# torchvision (not in Debian) did these for the book, on PIL images as here.
def to_tensor(picture):
    return torch.from_numpy(np.asarray(picture.convert('RGB'), dtype=np.float32) / 255).permute(2, 0, 1)


def to_pil_image(tensor):
    return PIL.Image.fromarray((tensor * 255).byte().permute(1, 2, 0).numpy())


class HandlingError(Exception):
    def __init__(self, message, code=500):
        super().__init__(message)
        self.handling_message = message
        self.handling_code = code


class ModelRunner:
    def __init__(self, archive):
        _, self.model = load_reference_model(archive)
        self.model.eval()
        self.queue = []
        self.queue_lock = None
        self.needs_processing = None
        self.needs_processing_timer = None
        self.loop = None

    def schedule_processing_if_needed(self):
        if len(self.queue) >= MAX_BATCH_SIZE:
            self.needs_processing.set()
        elif self.queue:
            self.needs_processing_timer = self.loop.call_at(self.queue[0]['time'] + MAX_WAIT,
                                                            self.needs_processing.set)

    async def process_input(self, picture):
        task = {'done_event': asyncio.Event(), 'input': picture, 'time': self.loop.time()}
        async with self.queue_lock:
            if len(self.queue) >= MAX_QUEUE_SIZE:
                raise HandlingError("I'm too busy", code=503)
            self.queue.append(task)
            self.schedule_processing_if_needed()
        await task['done_event'].wait()
        return task['output']

    def run_model(self, batch):  # in an executor thread
        with torch.no_grad():
            return ((self.model(batch) + 1) / 2).clamp(0, 1)

    async def model_runner(self):
        self.loop = asyncio.get_running_loop()
        self.queue_lock = asyncio.Lock()
        self.needs_processing = asyncio.Event()
        while True:
            await self.needs_processing.wait()
            self.needs_processing.clear()
            if self.needs_processing_timer is not None:
                self.needs_processing_timer.cancel()
                self.needs_processing_timer = None
            async with self.queue_lock:
                to_process = self.queue[:MAX_BATCH_SIZE]
                del self.queue[:len(to_process)]
                self.schedule_processing_if_needed()
            if not to_process:
                continue
            batch = torch.stack([task['input'] for task in to_process], dim=0)
            result = await self.loop.run_in_executor(None, functools.partial(self.run_model, batch))
            for task, output in zip(to_process, result):
                task['output'] = output
                task['done_event'].set()


def make_app(runner):
    async def image(request):
        try:
            data = await request.read()
            if len(data) > MAX_SIZE:
                raise HandlingError('Too large')
            picture = PIL.Image.open(io.BytesIO(data))
            picture = picture.resize((228, 228), PIL.Image.BILINEAR)
            tensor = to_tensor(picture)[:3]
            if tensor.dim() != 3 or tensor.size(0) != 3:
                raise HandlingError('need rgb image')
            output = await runner.process_input(tensor)
            out = io.BytesIO()
            to_pil_image(output).save(out, format='JPEG')
            return web.Response(body=out.getvalue(), content_type='image/jpeg')
        except HandlingError as error:
            return web.Response(text=error.handling_message, status=error.handling_code)

    async def start_runner(app):
        app['runner'] = asyncio.get_running_loop().create_task(runner.model_runner())

    app = web.Application(client_max_size=MAX_SIZE + 1)
    app.router.add_put('/image', image)
    app.on_startup.append(start_runner)
    return app


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1].startswith('-'):
        sys.exit(__doc__)
    web.run_app(make_app(ModelRunner(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]),
                print=lambda *_: print(f'listening on http://127.0.0.1:{sys.argv[2]}', flush=True))
