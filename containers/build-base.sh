#!/usr/bin/env bash
# Builds the local CPU base image (cxr-base:cpu) without an image registry:
#   1. debootstrap --variant=minbase of Debian bookworm (the host's release), with python3 and its venv,
#      plus this host's CA bundle so pip in later builds trusts the same authorities (never unverified);
#   2. `docker import` of that tree as cxr-debian:bookworm (skipped when the image exists);
#   3. containers/base/Dockerfile on it: tensorflow-cpu at requirements.txt's pin (cached by Docker).
# Needs a running engine (eval "$(containers/engine.sh start)") and root for debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
DEBIAN_IMAGE=cxr-debian:bookworm
BASE_IMAGE="${1:-cxr-base:cpu}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
TENSORFLOW_VERSION="$(sed -n 's/^tensorflow-cpu==//p' requirements.txt)"
[ -n "$TENSORFLOW_VERSION" ] || { echo "build-base.sh: no tensorflow-cpu==X pin in requirements.txt" >&2; exit 1; }

if ! docker image inspect "$DEBIAN_IMAGE" > /dev/null 2>&1; then
  rootfs="$(mktemp -d /var/tmp/cxr-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-base.sh: debootstrap bookworm into $rootfs (about 2 min)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" \
    > "$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$DEBIAN_IMAGE" > /dev/null
fi
docker build --network host -q -f containers/base/Dockerfile --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
  --build-arg "TENSORFLOW_VERSION=$TENSORFLOW_VERSION" -t "$BASE_IMAGE" containers/base > /dev/null
echo "$BASE_IMAGE"
