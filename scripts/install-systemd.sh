#!/usr/bin/env bash
# Install Pinnace's systemd units on a host, as the server or as a node. Used by the Vagrant
# provisioner; by hand on any Debian/Ubuntu host after scripts/setup.sh.
#
#   scripts/install-systemd.sh server --certs DIR [--server-ip IP]
#   scripts/install-systemd.sh node   --certs DIR --name NAME --ip IP --server-ip IP
#
# DIR is what `pinnace certs` wrote (DIR/server, DIR/nodes/<name>). Installs the units into
# /etc/systemd/system, their EnvironmentFiles into /etc/pinnace (an existing one is kept: it is
# the operator's), the certificates and kubeconfigs, /usr/local/bin/pinnace (a link to this
# checkout's .venv), and on a node containerd's CRI config, the built-in images and the server's
# registry as docker.io's mirror. Then it enables and starts the units when systemd runs the
# machine, and says so when it does not (a container, a chroot).
#   --root DIR   install under DIR instead of / (tests; nothing is started)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf 'install-systemd: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

role=${1:-}; shift || true
root="" certs="" name="" ip="" server_ip="127.0.0.1"
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --certs) certs=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --ip) ip=$2; shift 2 ;;
    --server-ip) server_ip=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
case "$role" in
  server) units=(apiserver scheduler controller-manager cloud-controller-manager)
          src="$certs/server" ;;
  node)   [ -n "$name" ] && [ -n "$ip" ] || die "a node needs --name and --ip"
          units=(agent netproxy)
          src="$certs/nodes/$name" ;;
  *) die "usage: install-systemd.sh server|node --certs DIR [...] (got '${role}')" ;;
esac
[ -n "$certs" ] || die "--certs DIR is required (what \`pinnace certs\` wrote)"
[ -d "$src" ] || die "$src does not exist: run \`pinnace certs\` on the server first"
[ -x "$top/.venv/bin/pinnace" ] || die "$top/.venv/bin/pinnace is missing: run scripts/setup.sh"

etc="$root/etc/pinnace"
install -d -m 0755 "$root/etc/systemd/system" "$root/usr/local/bin"
install -d -m 0750 "$etc"
ln -sfn "$top/.venv/bin/pinnace" "$root/usr/local/bin/pinnace"
cp -r "$src/pki" "$src/kubeconfigs" "$etc/"
chmod -R go-rwx "$etc/pki" "$etc/kubeconfigs"

for unit in "${units[@]}"; do
  install -m 0644 "$top/systemd/pinnace-$unit.service" "$root/etc/systemd/system/"
  if [ -e "$etc/$unit.env" ]; then
    say "keeping $etc/$unit.env"
  else
    sed -e "s/@SERVER_IP@/$server_ip/g" -e "s/@NODE_NAME@/$name/g" -e "s/@NODE_IP@/$ip/g" \
      "$top/systemd/env/$unit.env" > "$etc/$unit.env"
  fi
done

if [ "$role" = server ]; then
  # the local cloud provider's load balancer addresses: .200-.220 of the server's /24
  net=${server_ip%.*}
  [ -e "$etc/cloud.yaml" ] || sed "s/192\.168\.56\./$net./g" "$top/systemd/env/cloud.yaml" > "$etc/cloud.yaml"
  if [ -z "$root" ]; then
    id pinnace >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin pinnace
    chown -R root:pinnace "$etc"
    chmod -R g+rX "$etc"
  fi
else
  install -d -m 0755 "$root/etc/containerd" "$root/etc/cni/net.d" "$root/var/lib/pinnace/images"
  install -m 0644 "$top/systemd/containerd-node.toml" "$root/etc/containerd/config.toml"
  "$top/.venv/bin/pinnace" images build "$root/var/lib/pinnace/images" >/dev/null
  "$top/.venv/bin/pinnace" images mirror docker.io "http://$server_ip:5000" \
    --config-dir "$root/etc/containerd/certs.d" >/dev/null
fi
say "installed ${units[*]} ($role) under ${root:-/}"

[ -z "$root" ] || exit 0
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  [ "$role" = node ] && systemctl restart containerd
  if [ "$role" = server ]; then
    systemctl enable --now etcd docker-registry
    "$top/.venv/bin/pinnace" images build /var/lib/pinnace/images >/dev/null
    "$top/.venv/bin/pinnace" images push /var/lib/pinnace/images/busybox.tar \
      127.0.0.1:5000/library/busybox:latest
  fi
  systemctl enable --now "${units[@]/#/pinnace-}"
  say "started ${units[*]/#/pinnace-}"
else
  say "systemd is not running this machine: start the units where it is (systemctl enable --now ...)"
fi
