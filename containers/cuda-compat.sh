#!/bin/sh
# The image's entrypoint (SageMaker runs `docker run IMAGE train`): puts CUDA's forward-compatibility
# libraries first on the library path when the host's NVIDIA driver is older than the driver they come from,
# then runs the command. TensorFlow 2.21 is built with CUDA 12, which needs driver 525 or newer without them;
# SageMaker AI documents NVIDIA 470 (CUDA 11.4) on ml.p3 hosts ("Best practices to minimize interruptions
# during GPU driver upgrades"), and NVIDIA's forward compatibility (cuda-compat-12-x) covers data-center GPUs
# such as the V100 on older drivers. With a newer host driver the compat libraries must not be used.
# No nvidia-smi (a CPU host) or no compat libraries (the CPU base): nothing changes. If TensorFlow still sees
# no GPU on a GPU host, `train` fails with the reason (jobs/training/hardware.py).
set -eu
compat="${CXR_CUDA_COMPAT_DIR:-/usr/local/cuda-compat}"
host=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
shipped=$(ls "$compat" 2>/dev/null | sed -n 's/^libcuda\.so\.\([0-9][0-9.]*\.[0-9][0-9]*\)$/\1/p' | head -n 1)
if [ -n "$host" ] && [ -n "$shipped" ]; then
  oldest=$(printf '%s\n%s\n' "$host" "$shipped" | sort -V | head -n 1)
  if [ "$host" != "$shipped" ] && [ "$oldest" = "$host" ]; then
    export LD_LIBRARY_PATH="$compat${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "cuda-compat: host NVIDIA driver $host is older than $shipped: using $compat" >&2
  else
    echo "cuda-compat: host NVIDIA driver $host (compat libraries $shipped not needed)" >&2
  fi
elif [ -n "$host" ]; then
  echo "cuda-compat: host NVIDIA driver $host; no compat libraries in $compat" >&2
fi
exec "$@"
