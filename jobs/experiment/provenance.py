"""What changes a trained model's numbers from one machine to the next, recorded beside them.

With op determinism on, a rerun on the same machine gives the same bits; another machine may not:
oneDNN picks its kernels by the CPU's instruction set (AVX2, AVX-512, AMX), and each kernel sums in its
own order, so the weights drift apart from the first step and a small test set turns that drift into
another verdict. The report shows which machine made each figure, and the seeds' spread bounds the drift.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The instruction-set extensions oneDNN dispatches on (lscpu's names), and the variables that steer it.
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
SETTINGS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_DETERMINISTIC_OPS", "OMP_NUM_THREADS")


def cpu_description(cpuinfo: str) -> dict:
    """The CPU's model name and which of ``ISA_FLAGS`` it has, from /proc/cpuinfo's text."""
    fields = dict(
        line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line and not line.startswith(" ")
    )
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "cores": os.cpu_count(),
    }


def machine(deterministic: bool | None = None) -> dict:
    """This process's machine, libraries and numeric settings (TensorFlow is imported here)."""
    import keras
    import tensorflow as tf

    cpuinfo = Path("/proc/cpuinfo")
    build = tf.sysconfig.get_build_info()
    return {
        "cpu": cpu_description(cpuinfo.read_text() if cpuinfo.exists() else ""),
        "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cuda": build.get("cuda_version"),
        "settings": {name: os.environ.get(name) for name in SETTINGS},
        "op_determinism": deterministic,
        "python": platform.python_version(),
    }
