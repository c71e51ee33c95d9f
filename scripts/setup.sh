#!/usr/bin/env bash
# Install what Pinnace needs on a Debian/Ubuntu host, then a virtualenv (.venv) with the project
# installed editable with its dev extra. Idempotent: a second run installs nothing and changes
# nothing. Used by the Makefile, .ci/run and the Vagrant provisioner.
#   scripts/setup.sh            packages + venv
#   SKIP_APT=1 scripts/setup.sh venv only (a host whose packages someone else manages)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
PACKAGES=(
  etcd-server etcd-client                 # the cluster's store
  containerd runc containernetworking-plugins   # nodes: runtime, OCI runtime, CNI plugins
  iptables conntrack ipvsadm iproute2     # services and routes
  busybox-static                          # the built-in images' rootfs
  docker-registry                         # the local image registry
  docker.io                               # container-tier integration tests
  util-linux make ca-certificates python3-venv
  ruby                                    # the tests load the Vagrantfile (no Vagrant needed)
)

say() { printf 'setup: %s\n' "$*"; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { say "Debian packages: all present"; return; }
  [ "$(id -u)" -eq 0 ] || { say "installing ${missing[*]} needs root"; exit 1; }
  say "installing ${missing[*]}"
  # Keep package scripts from starting daemons (dockerd, etcd, containerd): we run our own.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added=1
  fi
  trap '[ -n "$added" ] && rm -f "$policy"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$added" ] && rm -f "$policy"
  trap - EXIT
}

install_venv() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "$PYTHON is older than 3.11"; exit 1; }
  [ -x "$top/.venv/bin/python" ] || { say "creating .venv"; "$PYTHON" -m venv "$top/.venv"; }
  local stamp="$top/.venv/.pinnace-installed" want
  want=$(cat "$top/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$top/.venv/bin/python" -c 'import cri, pytest' 2>/dev/null; then
    say "virtualenv: up to date"
    return
  fi
  say "installing the project into .venv (editable, with the dev extra)"
  "$top/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$top[dev]" 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$top/.venv/bin/python" -c 'import cri, pytest' || { say "pip install failed"; exit 1; }
  echo "$want" > "$stamp"
}

[ -n "${SKIP_APT:-}" ] || install_packages
install_venv
