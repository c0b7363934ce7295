#!/bin/sh
# Stage 2 of the image (Dockerfile) and of tests/integration/test_image_install.py: a fresh venv with
# the sidecar installed from the wheels of stage 1 only (no index, so nothing is built or fetched).
# Usage: image-install.sh <wheel dir> <venv dir>
set -eu
wheels=$1
venv=$2
python -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --no-index --find-links "$wheels" entitlements-sidecar
