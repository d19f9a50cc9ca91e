#!/bin/bash
# EMR bootstrap action: install the ETL's pinned Python 3.7 packages on each node, wheels only, hashes checked.
# Usage (from the cluster definition): emr-bootstrap.sh s3://bucket/path/emr-requirements.txt
set -euo pipefail
requirements=/tmp/cxr-emr-requirements.txt
aws s3 cp --only-show-errors "$1" "$requirements"
# pip first: the node's pip 9 cannot read numpy's manylinux2010 or OpenCV's manylinux2014 wheels and
# would try (and fail) to build them from source. The new pip comes from the same file, hash-checked.
grep -E '^pip==' "$requirements" > /tmp/cxr-emr-pip.txt
sudo python3 -m pip install --quiet --only-binary=:all: --require-hashes --requirement /tmp/cxr-emr-pip.txt
sudo python3 -m pip install --quiet --only-binary=:all: --require-hashes --requirement "$requirements"
