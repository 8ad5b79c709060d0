#!/usr/bin/env bash
# Optional Debian packages for tests that need them (each test skips when its tool is absent).
set -u
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "not root or no apt-get: skipping system packages"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
PKGS="libegl1 libgl1 libegl-mesa0 chromium blender python3-numpy"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
