"""The book's chapter 15 Flask server for LunaModel (p3ch15/flask_server.py), ported to run
here: the same route, multipart fields, tensor handling and answer; the model is the Python
reference LunaModel loaded from the archive in DLWPT_MODEL (the book imported a module its
repository later removed). A peer for tools/testing/bench_serve.py, run as users would run
Flask in production:

    DLWPT_MODEL=classifier.pt gunicorn -w 2 -b 127.0.0.1:8000 book_flask_server:app
"""
import json
import os
import pathlib
import sys

import numpy as np
import torch
from flask import Flask, request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from archive import load_reference_model  # noqa: E402

# One gunicorn worker per core, each with one torch thread: workers do not fight over cores.
torch.set_num_threads(int(os.environ.get('DLWPT_TORCH_THREADS', '1')))

app = Flask(__name__)
_, model = load_reference_model(os.environ['DLWPT_MODEL'])
model.eval()


def run_inference(in_tensor):
    with torch.no_grad():
        # LunaModel takes a batch and returns (logits, probabilities).
        out_tensor = model(in_tensor.unsqueeze(0))[1].squeeze(0)
    probs = out_tensor.tolist()
    return {'prob_malignant': probs[1]}


@app.route('/predict', methods=['POST'])
def predict():
    meta = json.load(request.files['meta'])
    blob = request.files['blob'].read()
    in_tensor = torch.from_numpy(np.frombuffer(blob, dtype=np.float32))
    in_tensor = in_tensor.view(*meta['shape'])
    return json.dumps(run_inference(in_tensor))
