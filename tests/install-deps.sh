#!/usr/bin/env bash
# Installs the system packages the tests need, only when missing (a fresh machine has none).
set -euo pipefail

need=()
command -v age >/dev/null && command -v age-keygen >/dev/null || need+=(age)
for extra in "$@"; do
  command -v "${extra%%:*}" >/dev/null || need+=("${extra#*:}")
done

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
