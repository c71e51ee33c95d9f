"""`pinnace up`: a whole cluster on this machine, in the foreground, until Ctrl-C or SIGTERM.

The script: take the data dir's lock and the machine's (a second `up` says who runs and exits
1), remove what a crashed earlier run left, plan (ports kept from the last run in DIR/up.json, so
kubeconfigs and the `kubernetes` endpoints stay valid), then `Cluster.start()` in a thread while
this (main) thread waits for a signal. After the final line, the same thread supervises the
children, restarting crashed ones with backoff. On a signal, or a failed start, everything
started is stopped and removed; DIR is kept, so the next `up` resumes the same cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pinnace.local.process import free_port
from pinnace.up.lock import MACHINE_LOCK, Busy, PidLock
from pinnace.up.plan import ClusterPlan, choose_ports, path_problems, plan_cluster

DEFAULT_DATA_DIR = Path("/var/lib/pinnace")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pinnace up", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help=f"where the cluster lives and is kept between runs ({DEFAULT_DATA_DIR})")
    p.add_argument("--nodes", type=int, default=1, help="how many nodes (1)")
    p.add_argument("--etcd-endpoints", default="",
                   help="comma-separated URLs of an external etcd (default: start one)")
    return p


def port_free(port: int) -> bool:
    """Whether a listener could bind `port` on every address (as Go's and aiohttp's do, with
    SO_REUSEADDR: connections of an earlier run in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def make_plan(args: argparse.Namespace, data_dir: Path) -> ClusterPlan:
    """Plan with the ports of the last run (DIR/up.json) where they are still free."""
    state_file = data_dir / "up.json"
    try:
        saved = json.loads(state_file.read_text()).get("ports", {})
    except (OSError, ValueError, AttributeError):
        saved = {}
    ports = choose_ports(saved, port_free, lambda: free_port("0.0.0.0"))
    plan = plan_cluster(data_dir, nodes=args.nodes, ports=ports,
                        etcd_endpoints=args.etcd_endpoints)
    state_file.write_text(json.dumps({"ports": ports.as_dict(), "nodes": args.nodes}) + "\n")
    return plan


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return up(args)
    except KeyboardInterrupt:  # before the signal handlers are in place: nothing to undo yet
        print("pinnace up: interrupted", file=sys.stderr)
        return 130


def up(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("pinnace up: needs root (network namespaces, links, containerd)", file=sys.stderr)
        return 1
    data_dir = args.data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    dir_lock = PidLock(data_dir / "up.pid", f"pinnace up --data-dir {data_dir}")
    machine_lock = PidLock(MACHINE_LOCK, f"pinnace up --data-dir {data_dir}")
    try:
        dir_lock.acquire()
    except Busy as busy:
        print(f"pinnace up: {data_dir} is running already (pid {busy}); stop that one first",
              file=sys.stderr)
        return 1
    try:
        try:
            machine_lock.acquire()
        except Busy as busy:
            print(f"pinnace up: another cluster is up on this machine (pid {busy}); its bridge "
                  "and node namespaces have machine-wide names: stop it first", file=sys.stderr)
            return 1
        # What a killed earlier run left may hold this cluster's ports: remove it first.
        from pinnace.up import leftovers

        stale = leftovers.remove(data_dir)
        if stale:
            print("pinnace up: removed what an earlier run left: " + "; ".join(stale),
                  flush=True)
        try:
            plan = make_plan(args, data_dir)
        except ValueError as exc:
            print(f"pinnace up: {exc}", file=sys.stderr)
            return 1
        problems = path_problems(plan)
        if problems:
            print(f"pinnace up: {problems[0]}", file=sys.stderr)
            return 1
        return run(plan)
    finally:
        machine_lock.release()
        dir_lock.release()


def run(plan: ClusterPlan) -> int:
    """Bring the cluster up, wait for a signal, tear down; the process's exit code."""
    # grpc's fork handlers only warn (on stderr) when teardown forks `umount` beside its threads.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from pinnace.up import leftovers
    from pinnace.up.cluster import Cluster

    cluster = Cluster(plan)
    if plan.external_etcd:
        what = f"cluster in {plan.data_dir} on etcd {plan.etcd_servers}"
    elif (plan.data_dir / "etcd").exists():
        what = f"resuming the cluster in {plan.data_dir}"
    else:
        what = f"new cluster in {plan.data_dir}"
    cluster.say(f"{what}, {len(plan.nodes)} node(s); logs in {plan.logs_dir}")
    stop = threading.Event()
    signalled: list[int] = []
    failure: list[BaseException] = []
    started = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def life() -> None:
        try:
            cluster.start()
            started.set()
            cluster.say(f"Ready in {time.monotonic() - cluster.t0:.1f} s: "
                        f"{len(plan.nodes)} node(s); export KUBECONFIG={plan.kubeconfig}")
            cluster.supervisor.run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=life, name="pinnace-up")
    thread.start()
    try:
        while not stop.wait(1.0):
            pass
        if signalled:
            cluster.say(f"{signal.Signals(signalled[0]).name}: stopping")
        if not started.is_set():
            cluster.abort()
        thread.join()
        if failure and not signalled:
            cluster.say(f"failed: {failure[0]}")
    finally:
        cluster.down()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    left = leftovers.find(plan.data_dir)
    if left:
        cluster.say("left behind: " + "; ".join(left))
    cluster.say(f"stopped; {plan.data_dir} kept: `pinnace up --data-dir {plan.data_dir}` "
                "resumes this cluster")
    return 1 if (failure and not signalled) or left else 0
