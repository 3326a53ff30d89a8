#!/usr/bin/env bash
# Fetches the Debian packages the C++ build needs beyond torch (yaml-cpp, nlohmann-json, CLI11, fmt, spdlog,
# libjpeg-turbo, zlib, Catch2) and unpacks them into .gpu_deps/root (git-ignored, ~10 MB), for a lent GPU machine
# that has torch, nvcc, cmake and ninja but no network and none of these. Run here, then pass `.gpu_deps` in the
# device run's `carry`; scripts/gpu_check.sh picks it up.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu_deps && mkdir -p .gpu_deps/debs .gpu_deps/root
(cd .gpu_deps/debs && apt-get download libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev libfmt-dev \
  libfmt9 libspdlog-dev libspdlog1.10 libturbojpeg0-dev libturbojpeg0 zlib1g-dev zlib1g catch2 2>/dev/null)
for deb in .gpu_deps/debs/*.deb; do dpkg -x "$deb" .gpu_deps/root; done
rm -rf .gpu_deps/debs
# zlib1g-dev's libz.so points at an absolute /lib path: point it inside the folder instead
ln -sf ../../../lib/x86_64-linux-gnu/libz.so.1 .gpu_deps/root/usr/lib/x86_64-linux-gnu/libz.so
du -sh .gpu_deps
