"""The OpenBLAS kernels the C++ apps select (apps/common/openblas.h), for Python processes
that must run the same arithmetic as the apps they are compared with."""

import os
import pathlib


def openblas_core_type():
    """SkylakeX with AVX-512, Haswell with AVX2, else None (OpenBLAS's own choice)."""
    cpuinfo = pathlib.Path('/proc/cpuinfo')
    flags = cpuinfo.read_text() if cpuinfo.exists() else ''
    if ' avx512f' in flags:
        return 'SkylakeX'
    if ' avx2' in flags:
        return 'Haswell'
    return None


def use_app_kernels():
    """Sets OPENBLAS_CORETYPE for child processes, as the apps do, unless it is set already."""
    core = openblas_core_type()
    if core and 'OPENBLAS_CORETYPE' not in os.environ:
        os.environ['OPENBLAS_CORETYPE'] = core
    return os.environ.get('OPENBLAS_CORETYPE', "OpenBLAS's own choice")
