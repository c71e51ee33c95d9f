#!/bin/sh
# PID 1 of a Pinnace node container (image: nodeimage.py; flags: PLATFORM.md's last section).
# Makes the container a node host, then runs what systemd runs on one: containerd with
# /etc/containerd/config.toml, `pinnace agent` and `pinnace netproxy` with the PINNACE_ARGS of
# /etc/pinnace/agent.env and netproxy.env (scripts/install-systemd.sh node wrote all three).
# Environment: NODE_IP, NODE_PREFIX (the link's address), PYTHON (the interpreter, bind-mounted).
# Logs: /var/log/pinnace/{containerd,agent,netproxy}.log (a directory of the test's).
set -eu
logs=/var/log/pinnace
say() { echo "node-entrypoint: $*"; }

# cgroup v1 controllers read-write (docker mounts them read-only without --privileged), and
# the network sysctls (CNI and netproxy write some); /proc/sys itself stays read-only.
if [ -d /sys/fs/cgroup/memory ]; then
  mount -o remount,rw /sys/fs/cgroup
  for d in /sys/fs/cgroup/*; do
    [ -L "$d" ] || mount -o remount,bind,rw "$d"
  done
else
  mount -o remount,rw /sys/fs/cgroup
fi
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,rw /proc/sys/net

# eth0 is the test's veth, moved into this network namespace once the container runs.
tries=0
until ip link show eth0 >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 600 ] || { say "no eth0 after 30s"; exit 1; }
  sleep 0.05
done
ip link set lo up
ip addr add "$NODE_IP/$NODE_PREFIX" dev eth0
ip link set eth0 up
echo 1 > /proc/sys/net/ipv4/ip_forward

args() { sed -n 's/^PINNACE_ARGS=//p' "/etc/pinnace/$1.env"; }
children=""
trap 'kill -TERM $children 2>/dev/null; wait; exit 0' TERM INT

containerd --config /etc/containerd/config.toml >"$logs/containerd.log" 2>&1 &
children="$children $!"
tries=0
until [ -S /run/containerd/containerd.sock ]; do
  tries=$((tries + 1))
  [ "$tries" -lt 600 ] || { say "containerd not listening after 30s"; exit 1; }
  sleep 0.05
done
# shellcheck disable=SC2046 # word splitting of PINNACE_ARGS, as systemd's $PINNACE_ARGS does
"$PYTHON" -m pinnace agent $(args agent) >"$logs/agent.log" 2>&1 &
children="$children $!"
# shellcheck disable=SC2046
"$PYTHON" -m pinnace netproxy $(args netproxy) >"$logs/netproxy.log" 2>&1 &
children="$children $!"
say "node $(hostname) at $NODE_IP: containerd, agent, netproxy started"
wait
