#!/bin/sh
# Build step: installs NVIDIA's CUDA forward-compatibility package for the CUDA that the base image's
# TensorFlow was built with (cuda-compat-<major>-<minor>, from the CUDA apt repository of NVIDIA's CUDA base
# images), and links its folder to /usr/local/cuda-compat, where containers/cuda-compat.sh looks at run time
# (CXR_CUDA_PREFIX replaces /usr/local for the tests).
# A TensorFlow without CUDA (the CPU base of containers/build-base.sh) needs none. A CUDA build whose package
# cannot be installed fails the build: better than a training job that cannot use its GPUs.
set -eu
prefix="${CXR_CUDA_PREFIX:-/usr/local}"
cuda=$(python3 -c 'import tensorflow as tf; print(tf.sysconfig.get_build_info().get("cuda_version") or "")' 2>/dev/null)
if [ -z "$cuda" ]; then
  echo "install-cuda-compat: TensorFlow has no CUDA build: no compat package"
  exit 0
fi
major=$(echo "$cuda" | cut -d. -f1)
minor=$(echo "$cuda" | cut -d. -f2)
package="cuda-compat-$major-$minor"
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "$package"; }; then
  echo "install-cuda-compat: cannot install $package (TensorFlow's CUDA $cuda): the base image needs NVIDIA's CUDA apt repository" >&2
  exit 1
fi
folder="$prefix/cuda-$major.$minor/compat"
if ! ls "$folder"/libcuda.so.* >/dev/null 2>&1; then
  echo "install-cuda-compat: $package installed no libcuda in $folder" >&2
  exit 1
fi
ln -sfn "$folder" "$prefix/cuda-compat"
echo "install-cuda-compat: $package in $folder"
