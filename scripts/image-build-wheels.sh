#!/bin/sh
# Stage 1 of the image (Dockerfile) and of tests/integration/test_image_install.py: build the sidecar's
# wheel and collect wheels of everything it needs, with the versions pinned in constraints.txt.
# Usage: image-build-wheels.sh <source dir> <wheel dir>
set -eu
src=$1
wheels=$2
python -m pip wheel --quiet --no-cache-dir --wheel-dir "$wheels" --constraint "$src/constraints.txt" "$src"
