#!/bin/bash
# EMR bootstrap action: install the ETL's pinned Python 3.7 packages on each node.
# Usage (from the cluster definition): emr-bootstrap.sh s3://bucket/path/emr-requirements.txt
set -euo pipefail
aws s3 cp "$1" /tmp/cxr-emr-requirements.txt
sudo python3 -m pip install --quiet --requirement /tmp/cxr-emr-requirements.txt
