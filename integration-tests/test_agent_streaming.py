"""Logs, exec and attach end to end: kubectl and the Python client -> apiserver -> AgentServer ->
containerd, all real. Terminal sessions (`exec -it`, `attach -it`) run kubectl on a pseudo-terminal
of their own, typed into and resized as a person would; `kubectl run -i --rm` runs against a real
`pinnace agent`.

No pod workers run here: each test starts its sandbox and containers through the CRI directly,
labelled as the agent labels them, creates the matching Pod (spec.nodeName set) through the API,
and runs `AgentServer` in the test's own event loop behind a Node whose InternalIP is 127.0.0.1
and whose daemonEndpoints name the server's port. Blocking clients (kubectl, the Python client)
run in threads, since the server they reach through the apiserver lives on this loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from harness import Kubectl, Pods, agent_daemon
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from agent import labels
from agent.server import AgentServer
from controlplane.apiserver import pki
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd

BUSYBOX = "localhost/busybox:1"
NS = "default"
NODE = f"streaming-{os.getpid() % 10000}"
Object = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module")
def core(apiserver: APIServerProcess) -> Iterator[k8s.CoreV1Api]:
    """The Python client, and this module's Node (deleted at the end, with its pods)."""
    api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(apiserver.kubeconfig))
    v1 = k8s.CoreV1Api(api_client)
    v1.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=NODE)))
    try:
        yield v1
    finally:
        for pod in v1.list_namespaced_pod(NS, field_selector=f"spec.nodeName={NODE}").items:
            if pod.metadata and pod.metadata.name:
                v1.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
        v1.delete_node(NODE)
        api_client.close()


@pytest.fixture
def node_agent(containerd: Containerd, apiserver: APIServerProcess,
               workdir: Path) -> Iterator[str]:
    """`pinnace agent` running pods for a Node of its own (sharing the host containerd, as
    integration-tests/test_agent.py does); yields the node's name. Only for the test that uses
    it: a running agent takes the other tests' CRI-made pods, seen on containerd's event stream,
    for orphans of its own and stops them."""
    name = f"{NODE}-agent"
    with agent_daemon(apiserver, containerd.socket, name, workdir / "streaming-agent"):
        yield name


@dataclass
class Agent:
    server: AgentServer
    running: list[Object] = field(default_factory=list)  # what the server's /pods reports


@pytest.fixture
async def agent(cri: RuntimeClient, core: k8s.CoreV1Api, apiserver: APIServerProcess,
                workdir: Path, tmp_path: Path) -> AsyncIterator[Agent]:
    """An AgentServer with a serving certificate from the cluster CA, named by the Node."""
    ca, ca_key = apiserver.cert_dir / "ca.crt", apiserver.cert_dir / "ca.key"
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    pki.issue_serving_cert(ca, ca_key, common_name=f"system:node:{NODE}",
                           hosts=["127.0.0.1", NODE], out_cert=cert, out_key=key)
    running: list[Object] = []
    server = AgentServer(cri, node_name=NODE, log_root=workdir / "pod-logs",
                         pods=lambda: running)
    port = await server.start(cert=cert, key=key, client_ca=ca, host="127.0.0.1", port=0)
    try:
        await blocking(core.patch_node_status, NODE, {"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
        yield Agent(server, running)
    finally:
        await server.stop()


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def start_pod(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api, agent: Agent,
                    name: str, containers: dict[str, str], *, node: str = NODE,
                    stdin: bool = False, stdin_once: bool = False,
                    tty: bool = False) -> list[str]:
    """Create Pod `name` (containers: name -> shell script; each with `stdin`, `stdinOnce`
    and `tty` as given) and run it through the CRI, as the agent would; return the container
    ids."""
    spec: Object = {"containers": [{"name": c, "image": BUSYBOX, "command": ["sh", "-c", s],
                                    "stdin": stdin, "stdinOnce": stdin_once, "tty": tty}
                                   for c, s in containers.items()]}
    if node:
        spec["nodeName"] = node
    pod = await blocking(core.create_namespaced_pod, NS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    assert pod.metadata is not None
    uid = str(pod.metadata.uid)
    agent.running.append({"metadata": {"name": name, "namespace": NS, "uid": uid}})
    config = pods.sandbox_config(name, NS)
    config.metadata.uid = uid
    pod_labels = {labels.POD_NAME: name, labels.POD_NAMESPACE: NS, labels.POD_UID: uid}
    config.labels.update(pod_labels)
    sandbox_id = await cri.run_pod_sandbox(config)
    ids = []
    for container, script in containers.items():
        container_config = pods.container_config(container, BUSYBOX, ["sh", "-c", script])
        container_config.log_path = labels.container_log_path(container, 0)
        container_config.labels.update({**pod_labels, labels.CONTAINER_NAME: container})
        container_config.annotations[labels.RESTART_COUNT] = "0"
        container_config.stdin, container_config.stdin_once = stdin, stdin_once
        container_config.tty = tty
        container_id = await cri.create_container(sandbox_id, container_config, config)
        await cri.start_container(container_id)
        ids.append(container_id)
    return ids


async def wait_state(cri: RuntimeClient, container_id: str, state: int,
                     timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (await cri.container_status(container_id)).state != state:
        assert time.monotonic() < deadline, f"container {container_id} never reached {state}"
        await asyncio.sleep(0.05)


async def kubectl_until(kubectl: Kubectl, expected: str, *args: str) -> str:
    """Run kubectl until its stdout is `expected` (output may still be on its way)."""
    deadline = time.monotonic() + 20
    while True:
        result = await blocking(kubectl.run, *args)
        if result.stdout == expected or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return str(result.stdout)
        await asyncio.sleep(0.1)


async def test_kubectl_logs(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api, agent: Agent,
                            kubectl: Kubectl) -> None:
    await start_pod(cri, pods, core, agent, "logs", {"c": "echo one; echo two; sleep 300"})
    assert await kubectl_until(kubectl, "one\ntwo\n", "logs", "logs") == "one\ntwo\n"
    assert (await blocking(kubectl, "logs", "logs", "--tail=1")) == "two\n"
    stamped = await blocking(kubectl, "logs", "logs", "--timestamps")
    assert [line.split(" ", 1)[1] for line in stamped.splitlines()] == ["one", "two"]
    assert (await blocking(kubectl, "logs", "logs", "--limit-bytes=6")) == "one\ntw"
    text = await blocking(core.read_namespaced_pod_log, "logs", NS)
    assert text == "one\ntwo\n"


async def test_kubectl_logs_previous(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api,
                                     agent: Agent, kubectl: Kubectl) -> None:
    [first] = await start_pod(cri, pods, core, agent, "prev", {"c": "echo first run"})
    await wait_state(cri, first, api.CONTAINER_EXITED)
    stderr = await blocking(kubectl.fails, "logs", "prev", "--previous")
    assert 'previous terminated container "c" in pod "prev" not found' in stderr
    # The restart, as the agent would make it: attempt 1, its own log file.
    status = await cri.container_status(first)
    sandbox_id = next(c.pod_sandbox_id for c in await cri.list_containers() if c.id == first)
    sandbox = await cri.pod_sandbox_status(sandbox_id, verbose=True)
    config = pods.container_config("c", BUSYBOX, ["sh", "-c", "echo second run; sleep 300"])
    config.metadata.attempt = 1
    config.log_path = labels.container_log_path("c", 1)
    config.labels.update(status.labels)
    config.annotations[labels.RESTART_COUNT] = "1"
    sandbox_config = pods.sandbox_config("prev", NS)
    sandbox_config.metadata.CopyFrom(sandbox.status.metadata)
    sandbox_config.log_directory = str(Path(status.log_path).parent.parent)
    second = await cri.create_container(sandbox_id, config, sandbox_config)
    await cri.start_container(second)
    assert await kubectl_until(kubectl, "second run\n", "logs", "prev") == "second run\n"
    assert await blocking(kubectl, "logs", "prev", "--previous") == "first run\n"


async def test_a_follower_that_goes_away_is_let_go(cri: RuntimeClient, pods: Pods,
                                                   core: k8s.CoreV1Api, agent: Agent,
                                                   kubectl: Kubectl) -> None:
    await start_pod(cri, pods, core, agent, "quiet", {"c": "echo hello; sleep 300"})

    def followers() -> float:
        value = agent.server.metrics.registry.get_sample_value(
            "pinnace_agent_active_streams", {"kind": "logs"})
        return value or 0.0

    process = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
         str(kubectl.cache_dir), "logs", "-f", "quiet"], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert await blocking(process.stdout.readline) == b"hello\n"
        assert followers() == 1
    finally:
        process.kill()
        process.wait()
        process.stdout.close() if process.stdout else None
    deadline = time.monotonic() + 10
    while followers() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert followers() == 0


async def test_kubectl_logs_follow_ends_when_the_container_exits(
        cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api, agent: Agent,
        kubectl: Kubectl) -> None:
    [container_id] = await start_pod(cri, pods, core, agent, "follow", {
        "c": "for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done"})
    started = time.monotonic()
    result = await blocking(kubectl.run, "logs", "-f", "follow", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"line{i}\n" for i in range(1, 6))
    assert time.monotonic() - started < 20
    await wait_state(cri, container_id, api.CONTAINER_EXITED)


async def test_kubectl_exec(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api, agent: Agent,
                            kubectl: Kubectl) -> None:
    [container_id] = await start_pod(cri, pods, core, agent, "exec", {"c": "sleep 300"})
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    assert await blocking(kubectl, "exec", "exec", "--", "echo", "hi") == "hi\n"
    failed = await blocking(kubectl.run, "exec", "exec", "--", "false")
    assert failed.returncode == 1, failed.stderr
    three = await blocking(kubectl.run, "exec", "exec", "--", "sh", "-c", "echo out; exit 3")
    assert (three.returncode, three.stdout) == (3, "out\n"), three.stderr
    both = await blocking(kubectl.run, "exec", "exec", "--", "sh", "-c", "echo err >&2")
    assert both.stderr.startswith("err\n")
    piped = await blocking(kubectl, "exec", "-i", "exec", "--", "cat", input="hello\nworld\n")
    assert piped == "hello\nworld\n"
    counted = await blocking(kubectl, "exec", "-i", "exec", "--", "wc", "-c",
                             input="x" * 100_000)
    assert counted.strip() == "100000"


async def test_python_client_exec_and_attach(cri: RuntimeClient, pods: Pods,
                                             core: k8s.CoreV1Api, agent: Agent) -> None:
    [container_id] = await start_pod(cri, pods, core, agent, "pyexec", {
        "c": "while :; do echo tick; sleep 0.2; done"})
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)

    def run_exec() -> tuple[int | None, str, str]:
        resp = stream(core.connect_get_namespaced_pod_exec, "pyexec", NS,
                      command=["sh", "-c", "echo out; echo err >&2; exit 5"], stderr=True,
                      stdin=False, stdout=True, tty=False, _preload_content=False)
        resp.run_forever(timeout=20)
        return resp.returncode, resp.read_stdout(), resp.read_stderr()

    assert await blocking(run_exec) == (5, "out\n", "err\n")

    def run_tty() -> tuple[int | None, str]:
        resp = stream(core.connect_get_namespaced_pod_exec, "pyexec", NS, command=["sh"],
                      stdin=True, stdout=True, stderr=False, tty=True, _preload_content=False)
        resp.write_channel(4, json.dumps({"Width": 100, "Height": 30}))
        resp.write_stdin("sleep 0.5; stty size; exit 7\n")
        resp.run_forever(timeout=20)
        return resp.returncode, resp.read_stdout()

    code, output = await blocking(run_tty)
    assert code == 7
    assert "30 100" in output

    def run_attach() -> str:
        resp = stream(core.connect_get_namespaced_pod_attach, "pyexec", NS, stdout=True,
                      stderr=True, stdin=False, tty=False, _preload_content=False)
        out = ""
        deadline = time.monotonic() + 20
        while "tick" not in out and time.monotonic() < deadline:
            resp.update(timeout=1)
            out += resp.read_stdout() if resp.peek_stdout() else ""
        resp.close()
        return out

    assert "tick" in await blocking(run_attach)


async def test_errors_are_statuses(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api,
                                   agent: Agent, kubectl: Kubectl) -> None:
    await blocking(core.create_namespaced_pod, NS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbound"},
        "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}})
    stderr = await blocking(kubectl.fails, "logs", "unbound")
    assert "pod unbound does not have a host assigned" in stderr
    await blocking(core.delete_namespaced_pod, "unbound", NS, grace_period_seconds=0)

    ids = await start_pod(cri, pods, core, agent, "two", {"a": "sleep 300", "b": "exit 0"})
    with pytest.raises(ApiException) as caught:
        await blocking(core.read_namespaced_pod_log, "two", NS)
    assert caught.value.status == 400
    assert "a container name must be specified for pod two, choose one of: [a b]" in str(
        caught.value.body)
    stderr = await blocking(kubectl.fails, "logs", "two", "-c", "nope")
    assert "container nope is not valid for pod two" in stderr
    await wait_state(cri, ids[1], api.CONTAINER_EXITED)
    stderr = await blocking(kubectl.fails, "exec", "two", "-c", "b", "--", "true")
    assert 'container not found ("b")' in stderr


async def test_kubectl_attach(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api, agent: Agent,
                              kubectl: Kubectl) -> None:
    ticks = "i=0; while [ $i -lt 25 ]; do echo {0}$i; sleep 0.2; i=$((i+1)); done"
    # `stdin: true` without -i: containerd's WebSocket would end such an attach at once.
    ids = await start_pod(cri, pods, core, agent, "att", {"a": ticks.format("a"),
                                                          "b": ticks.format("b")}, stdin=True)
    for container_id in ids:
        await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    result = await blocking(kubectl.run, "attach", "att", "-c", "b", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("b23\nb24\n"), result.stdout
    assert "a2" not in result.stdout


async def test_kubectl_attach_stdin(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api,
                                    agent: Agent, kubectl: Kubectl) -> None:
    # stdinOnce: the end of kubectl's input closes the container's stdin and the attach lasts
    # until the container exits (without it, containerd ends the attach with the input).
    script = "while read line; do echo got:$line; done; echo eof"
    [container_id] = await start_pod(cri, pods, core, agent, "atti", {"c": script}, stdin=True,
                                     stdin_once=True)
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    result = await blocking(kubectl.run, "attach", "-i", "atti", input="hello\nbye\n",
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "got:hello\ngot:bye\neof\n"
    await wait_state(cri, container_id, api.CONTAINER_EXITED)


async def test_python_client_attach_stdin(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api,
                                          agent: Agent) -> None:
    script = 'while read line; do echo got:$line; [ "$line" = bye ] && exit 0; done'
    [container_id] = await start_pod(cri, pods, core, agent, "pyatt", {"c": script},
                                     stdin=True)
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)

    def run_attach() -> str:
        resp = stream(core.connect_get_namespaced_pod_attach, "pyatt", NS, stdout=True,
                      stderr=True, stdin=True, tty=False, _preload_content=False)
        out = ""
        resp.write_stdin("hello\n")
        deadline = time.monotonic() + 20
        while "got:hello" not in out and time.monotonic() < deadline:
            resp.update(timeout=1)
            out += resp.read_stdout() if resp.peek_stdout() else ""
        resp.write_stdin("bye\n")
        resp.run_forever(timeout=20)
        out += str(resp.read_stdout())
        resp.close()
        return out

    assert await blocking(run_attach) == "got:hello\ngot:bye\n"
    await wait_state(cri, container_id, api.CONTAINER_EXITED)


class Terminal:
    """kubectl on a pseudo-terminal of its own: what is typed, what it shows, resizes."""

    def __init__(self, kubectl: Kubectl, *args: str) -> None:
        self.master, slave = os.openpty()
        self._set_size(24, 80)
        self.process = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
             str(kubectl.cache_dir), *args], stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True)
        os.close(slave)
        self.screen = b""

    def _set_size(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def resize(self, rows: int, columns: int) -> None:
        """Resize the terminal and tell kubectl, as a terminal emulator does (SIGWINCH)."""
        self._set_size(rows, columns)
        self.process.send_signal(signal.SIGWINCH)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, timeout: float = 20) -> str:
        """Read until `text` is on the screen; return the screen so far."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}: {self.screen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: kubectl closed the terminal
                    chunk = b""
                assert chunk, f"kubectl ended before {text!r}: {self.screen!r}"
                self.screen += chunk
        return self.screen.decode(errors="replace")

    def wait(self, timeout: float = 20) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


async def test_kubectl_exec_on_a_terminal(cri: RuntimeClient, pods: Pods, core: k8s.CoreV1Api,
                                          agent: Agent, kubectl: Kubectl) -> None:
    [container_id] = await start_pod(cri, pods, core, agent, "tty", {"c": "sleep 300"})
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    terminal = Terminal(kubectl, "exec", "-it", "tty", "--", "sh")
    try:
        await blocking(terminal.type, "tty; echo mark-$((40 + 2))\n")
        screen = await blocking(terminal.expect, "mark-42")
        assert "/dev/pts/" in screen  # containerd allocated the container a terminal
        assert "Unable to use a TTY" not in screen
        await blocking(terminal.type, "stty size\n")
        await blocking(terminal.expect, "24 80")
        terminal.resize(30, 100)
        await asyncio.sleep(0.5)
        await blocking(terminal.type, "stty size\n")
        await blocking(terminal.expect, "30 100")
        await blocking(terminal.type, "exit 3\n")
        assert await blocking(terminal.wait) == 3, terminal.screen
    finally:
        terminal.close()


def test_kubectl_run_interactive_and_removed(node_agent: str, kubectl: Kubectl) -> None:
    overrides = json.dumps({"spec": {"nodeName": node_agent}})

    def run(name: str, script: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return kubectl.run("run", name, "-i", "--rm", "--restart=Never", f"--image={BUSYBOX}",
                           f"--overrides={overrides}", "--", "sh", "-c", script, input=stdin,
                           timeout=90)

    typed = run("typed", "read x; echo got-$x; exit 4", "hello\n")
    assert (typed.returncode, typed.stdout) == (4, 'got-hello\npod "typed" deleted\n'), typed
    # Attached before the output, with stdin closed at once (stdinOnce: the container's too).
    slow = run("slow", "sleep 2; echo slow; cat; echo eof; exit 3", "")
    assert (slow.returncode, slow.stdout) == (3, 'slow\neof\npod "slow" deleted\n'), slow
    # Done before kubectl attaches (it falls back to the logs), or while it does (the output is
    # gone by then, as with any kubelet): the exit code comes through either way.
    quick = run("quick", "echo quick; exit 5", "")
    assert quick.returncode == 5, quick
    assert quick.stdout in ('quick\npod "quick" deleted\n', 'pod "quick" deleted\n'), quick
    deadline = time.monotonic() + 30
    while kubectl.run("get", "pod", "typed", "slow", "quick", "-o", "name").stdout:
        assert time.monotonic() < deadline, "pods of kubectl run --rm are still there"
        time.sleep(0.3)


async def test_kubectl_attach_on_a_terminal(cri: RuntimeClient, pods: Pods,
                                            core: k8s.CoreV1Api, agent: Agent,
                                            kubectl: Kubectl) -> None:
    [container_id] = await start_pod(cri, pods, core, agent, "atty", {"c": "exec sh"},
                                     stdin=True, tty=True)
    await wait_state(cri, container_id, api.CONTAINER_RUNNING)
    terminal = Terminal(kubectl, "attach", "-it", "atty")
    try:
        await blocking(terminal.type, "tty; echo mark-$((40 + 2))\n")
        screen = await blocking(terminal.expect, "mark-42")
        assert "/dev/pts/" in screen
        terminal.resize(33, 120)
        await asyncio.sleep(0.5)
        await blocking(terminal.type, "stty size\n")
        await blocking(terminal.expect, "33 120")
        await blocking(terminal.type, "exit 3\n")
        assert await blocking(terminal.wait) == 0  # attach ends with the container, no code
    finally:
        terminal.close()
    await wait_state(cri, container_id, api.CONTAINER_EXITED)
