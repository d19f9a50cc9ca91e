"""Devices: every visible GPU through MirroredStrategy with mixed precision, or the plain CPU.

On ml.p3.8xlarge (4 V100) the global batch is the per-replica batch x 4; the paper's batch 3 is per replica.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from jobs.training.errors import TrainingError


@dataclass(frozen=True)
class HardwarePlan:
    devices: tuple[str, ...]
    mixed_precision: bool

    @property
    def deterministic(self) -> bool:
        """Op determinism on CPU (bit-identical reruns); GPUs keep their fast nondeterministic kernels."""
        return not self.devices


def plan_hardware(gpu_names: list[str]) -> HardwarePlan:
    """Pure: which devices to mirror over and whether to use mixed precision."""
    devices = tuple(f"/gpu:{i}" for i in range(len(gpu_names)))
    return HardwarePlan(devices=devices, mixed_precision=bool(devices))


def detect_hardware(gpus_expected: str | None = None) -> HardwarePlan:
    """The visible devices; ``gpus_expected`` (why the host has GPUs) turns "no GPU visible" into a
    TrainingError: TensorFlow falls back to the CPU silently when its CUDA cannot use the host's driver, and
    a GPU instance would then bill hours of CPU training."""
    plan = plan_hardware([gpu.name for gpu in tf.config.list_physical_devices("GPU")])
    if gpus_expected and not plan.devices:
        raise TrainingError(no_gpu_message(gpus_expected, tf.sysconfig.get_build_info()))
    return plan


def no_gpu_message(gpus_expected: str, build: dict) -> str:
    """Names the host, TensorFlow's CUDA build and what to check (the driver, the compat libraries)."""
    cuda = build.get("cuda_version") or "none: a CPU-only TensorFlow build"
    return (
        f"this host has GPUs ({gpus_expected}) but TensorFlow sees none (its CUDA: {cuda}); refusing to train "
        "on the CPU. The host's NVIDIA driver is probably older than this CUDA needs and the image's CUDA "
        "forward-compatibility libraries were not used: see containers/README.md (GPU driver); "
        "`nvidia-smi` in the job's log shows the driver"
    )


def make_strategy(plan: HardwarePlan) -> tf.distribute.Strategy:
    """Sets the global dtype policy too, so models built under the strategy get it."""
    keras.mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")
    return (
        tf.distribute.MirroredStrategy(devices=list(plan.devices))
        if plan.devices
        else tf.distribute.get_strategy()
    )


def global_batch_size(per_replica: int, strategy: tf.distribute.Strategy) -> int:
    return per_replica * strategy.num_replicas_in_sync
