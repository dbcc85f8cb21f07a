"""TorchScript archives as this project writes them for the C++ side.

Model archives are traced modules carrying an extra file `dlwpt_model.cfg` ("key=value" lines:
the model class and its constructor options), from which the C++ loader builds the matching
native model. Tensor archives hold named tensors as buffers of a scripted module, the same
layout C++ `weights::write_archive` produces, so either side reads what the other writes.
"""

import torch
from torch import nn

from atomic import atomic_path
from reference_models import build_model, complete_options, default_options

CONFIG_FILE = 'dlwpt_model.cfg'


def option_text(value):
    """An option as weights/model_schema.h writes it: booleans true/false, lists comma-separated."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (tuple, list)):
        return ','.join(str(item) for item in value)
    return str(value)


def config_text(model_name, options):
    options = complete_options(model_name, options)
    lines = [f'model={model_name}']
    for key, value in sorted(options.items()):
        lines.append(f'{key}={option_text(value)}')
    return '\n'.join(lines) + '\n'


def parse_config_text(text):
    if isinstance(text, bytes):
        text = text.decode('utf-8')
    options = dict(line.split('=', 1) for line in text.splitlines() if line.strip())
    return options.pop('model'), options


def save_model_archive(model, example_input, path, model_name, options):
    """Traces `model` (in eval mode) on `example_input` and saves it with its configuration
    (all constructor options, defaults included)."""
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example_input, check_trace=False)
    with atomic_path(path) as temporary:
        torch.jit.save(traced, str(temporary),
                       _extra_files={CONFIG_FILE: config_text(model_name, options)})


def read_model_config(path):
    files = {CONFIG_FILE: ''}
    torch.jit.load(str(path), _extra_files=files)
    return parse_config_text(files[CONFIG_FILE])


def typed_option(key, text, defaults):
    if key not in defaults:
        raise ValueError(f'unknown option {key!r}; expected one of {sorted(defaults)}')
    default = defaults[key]
    if isinstance(default, bool):
        # The same spellings the C++ loader takes, and no others.
        if text not in ('true', 'True', '1', 'false', 'False', '0'):
            raise ValueError(f'option {key!r} is {text!r}, not true or false')
        return text in ('true', 'True', '1')
    if isinstance(default, tuple):
        return tuple(int(item) for item in text.split(','))
    return type(default)(text)


def load_reference_model(path):
    """The Python reference model an archive's configuration names, with the archive's
    parameters and buffers loaded strictly; returns (model class name, model)."""
    model_name, text_options = read_model_config(path)
    defaults = default_options(model_name)
    options = {key: typed_option(key, text, defaults) for key, text in text_options.items()}
    model = build_model(model_name, **options)
    model.load_state_dict(torch.jit.load(str(path), map_location='cpu').state_dict(),
                          strict=True)
    return model_name, model


class _TensorHolder(nn.Module):
    pass


def save_tensors(tensors, path):
    """Saves a {name: tensor} dict; dotted names become nested modules."""
    root = _TensorHolder()
    for name, tensor in tensors.items():
        *parents, leaf = name.split('.')
        holder = root
        for part in parents:
            if not hasattr(holder, part):
                holder.add_module(part, _TensorHolder())
            holder = getattr(holder, part)
        holder.register_buffer(leaf, tensor.detach().contiguous().clone())
    with atomic_path(path) as temporary:
        torch.jit.save(torch.jit.script(root), str(temporary))


def load_tensors(path):
    archive = torch.jit.load(str(path), map_location='cpu')
    tensors = dict(archive.named_parameters())
    tensors.update(archive.named_buffers())
    return tensors
