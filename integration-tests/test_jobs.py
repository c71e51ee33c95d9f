"""Jobs and CronJobs end to end: the real apiserver and etcd, `pinnace controller-manager`
(job, cronjob, ttl-after-finished and garbage-collector controllers) and a real agent running
the pods in containerd, driven by the real kubectl.

No scheduler runs: pod templates name the agent's node (`kubectl create job` pods, which do
not, stay Pending, which is all those tests need).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl, agent_daemon, pinnace_daemon

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd
from pinnace.local.daemon import PinnaceDaemon

Object = dict[str, Any]
NODE = f"jobs-{os.getpid() % 10000}"
IMAGE = "localhost/busybox:1"
CONTROLLERS = "job,cronjob,ttl-after-finished,garbagecollector"


@pytest.fixture(scope="module")
def agent(containerd: Containerd, apiserver: APIServerProcess,
          workdir: Path) -> Iterator[PinnaceDaemon]:
    with agent_daemon(apiserver, containerd.socket, NODE, workdir / "jobs-agent",
                    name="jobs-agent") as process:
        yield process


@pytest.fixture(scope="module")
def controller_manager(apiserver: APIServerProcess, workdir: Path) -> Iterator[PinnaceDaemon]:
    with pinnace_daemon("controller-manager", "--kubeconfig", str(apiserver.kubeconfig),
                        "--leader-elect=false", "--controllers", CONTROLLERS,
                        log=workdir / "controller-manager" / "jobs.log",
                        name="controller-manager-jobs") as proc:
        yield proc


@pytest.fixture
def ns(kubectl: Kubectl, agent: PinnaceDaemon, controller_manager: PinnaceDaemon) -> str:
    name = f"j-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def get(kubectl: Kubectl, *args: str) -> Object:
    return json.loads(kubectl("get", *args, "-o", "json"))  # type: ignore[no-any-return]


def wait_until(kubectl: Kubectl, check: str, *args: str, timeout: float = 90) -> Object:
    """Poll `kubectl get ... -o json` until `check` (Python over `o`) holds."""
    return kubectl.get_until(check, *args, timeout=timeout, interval=0.5)


def job_manifest(name: str, ns: str, command: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": ns}, "spec": {
                           "template": pod_template(command), **spec}})


def pod_template(command: str) -> Object:
    return {"spec": {"nodeName": NODE, "restartPolicy": "Never",
                     "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": IMAGE,
                                     "command": ["sh", "-c", command]}]}}


def conditions(job: Object) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""))
            for c in (job.get("status") or {}).get("conditions") or []}


def test_parallel_job_completes(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=job_manifest("pi", ns, "sleep 1; echo done",
                                                    parallelism=2, completions=4))
    out = kubectl("wait", "-n", ns, "--for=condition=complete", "job/pi", "--timeout=120s")
    assert "job.batch/pi condition met" in out
    job = get(kubectl, "job", "pi", "-n", ns)
    status = job["status"]
    assert status["succeeded"] == 4 and status.get("failed", 0) == 0
    assert status["startTime"] and status["completionTime"]
    assert status["uncountedTerminatedPods"] == {} and status.get("active", 0) == 0
    assert conditions(job)["Complete"] == ("True", "CompletionsReached")
    uid = job["metadata"]["uid"]
    pods = get(kubectl, "pods", "-n", ns, "-l", f"batch.kubernetes.io/controller-uid={uid}")
    assert len(pods["items"]) == 4
    for pod in pods["items"]:
        m = pod["metadata"]
        assert pod["status"]["phase"] == "Succeeded"
        assert m["labels"]["job-name"] == m["labels"]["batch.kubernetes.io/job-name"] == "pi"
        assert m["labels"]["controller-uid"] == uid
        assert not m.get("finalizers")  # counted, then released
        ref = m["ownerReferences"][0]
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "Job", uid, True, True)
    assert "Completed" in kubectl("get", "events", "-n", ns)
    table = kubectl("get", "job", "pi", "-n", ns)
    assert "4/4" in table


def test_failing_job_hits_its_backoff_limit(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=job_manifest("bad", ns, "exit 3", backoffLimit=1))
    kubectl("wait", "-n", ns, "--for=condition=failed", "job/bad", "--timeout=120s")
    job = get(kubectl, "job", "bad", "-n", ns)
    assert conditions(job)["Failed"] == ("True", "BackoffLimitExceeded")
    assert job["status"]["failed"] == 2 and job["status"].get("succeeded", 0) == 0
    events = kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=bad")
    assert "BackoffLimitExceeded" in events


def test_active_deadline_fails_the_job_and_deletes_its_pods(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=job_manifest("slow", ns, "sleep 300",
                                                    activeDeadlineSeconds=5))
    kubectl("wait", "-n", ns, "--for=condition=failed", "job/slow", "--timeout=90s")
    job = get(kubectl, "job", "slow", "-n", ns)
    assert conditions(job)["Failed"] == ("True", "DeadlineExceeded")
    assert job["status"]["failed"] == 1
    wait_until(kubectl, "not o['items']", "pods", "-n", ns, "-l", "job-name=slow",
               timeout=60)


def test_ttl_after_finished_deletes_the_job_and_its_pods(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=job_manifest("brief", ns, "true",
                                                    ttlSecondsAfterFinished=2))
    wait_until(kubectl, "not o['items']", "jobs", "-n", ns, timeout=90)
    wait_until(kubectl, "not o['items']", "pods", "-n", ns, "-l", "job-name=brief",
               timeout=60)


def test_kubectl_create_job_gets_a_generated_selector(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "job", "hello", f"--image={IMAGE}", "-n", ns, "--", "echo", "hi")
    job = get(kubectl, "job", "hello", "-n", ns)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {
        "batch.kubernetes.io/controller-uid": uid}}
    pods = wait_until(kubectl, "len(o['items']) == 1", "pods", "-n", ns, "-l",
                      f"controller-uid={uid}", timeout=30)
    assert pods["items"][0]["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    status = wait_until(kubectl, "o['status'].get('active') == 1", "job", "hello", "-n", ns,
                        timeout=30)["status"]
    assert status["startTime"]


def test_cronjob_runs_on_schedule_and_prunes_history(kubectl: Kubectl, ns: str) -> None:
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "tick", "namespace": ns},
               "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1,
                        "jobTemplate": {"spec": {"template": pod_template("echo tick")}}}}
    kubectl("apply", "-f", "-", input=json.dumps(cronjob))
    cj = get(kubectl, "cronjob", "tick", "-n", ns)
    # three old finished runs: history keeps the newest one
    for minute in (1, 2, 3):
        old = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": f"tick-old{minute}", "namespace": ns, "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                "uid": cj["metadata"]["uid"], "controller": True}]},
            "spec": {"suspend": True, "template": pod_template("true")}}
        kubectl("apply", "-f", "-", input=json.dumps(old))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kubectl("patch", "job", f"tick-old{minute}", "-n", ns, "--subresource=status",
                "--type=merge", "-p", json.dumps({"status": {
                    "startTime": now, "completionTime": now, "conditions": [
                        {"type": "Complete", "status": "True", "lastTransitionTime": now}]}}))
        time.sleep(1.1)
    wait_until(kubectl, "[j['metadata']['name'] for j in o['items'] "
               "if j['metadata']['name'].startswith('tick-old')] == ['tick-old3']",
               "jobs", "-n", ns, timeout=30)
    # the schedule's run: within a minute (plus the pod's time), named by the minute
    jobs = wait_until(kubectl, "any(not j['metadata']['name'].startswith('tick-old') "
                      "for j in o['items'])", "jobs", "-n", ns, timeout=75)
    (run,) = [j for j in jobs["items"] if not j["metadata"]["name"].startswith("tick-old")]
    stamp = run["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    scheduled = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert run["metadata"]["name"] == f"tick-{int(scheduled) // 60}"
    assert run["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    status = wait_until(kubectl, "o['status'].get('lastScheduleTime')", "cronjob", "tick",
                        "-n", ns)["status"]
    assert status["lastScheduleTime"] == stamp
    name = run["metadata"]["name"]
    kubectl("wait", "-n", ns, "--for=condition=complete", f"job/{name}", "--timeout=60s")
    wait_until(kubectl, "o['status'].get('lastSuccessfulTime')", "cronjob", "tick", "-n", ns)
    wait_until(kubectl, "'tick-old3' not in [j['metadata']['name'] for j in o['items']]",
               "jobs", "-n", ns, timeout=30)
    kubectl("patch", "cronjob", "tick", "-n", ns, "--type=merge", "-p",
            '{"spec": {"suspend": true}}')


def test_create_job_from_cronjob(kubectl: Kubectl, ns: str) -> None:
    cronjob: Object = {"apiVersion": "batch/v1", "kind": "CronJob",
                       "metadata": {"name": "nightly", "namespace": ns},
                       "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                           "spec": {"template": pod_template("echo manual")}}}}
    kubectl("apply", "-f", "-", input=json.dumps(cronjob))
    kubectl("create", "job", "by-hand", "--from=cronjob/nightly", "-n", ns)
    kubectl("wait", "-n", ns, "--for=condition=complete", "job/by-hand", "--timeout=90s")
    job = get(kubectl, "job", "by-hand", "-n", ns)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    bad = kubectl.fails("apply", "-f", "-", input=json.dumps(dict(cronjob, spec=dict(
        cronjob["spec"], schedule="TZ=UTC 0 3 * * *"))))
    assert "cannot use TZ or CRON_TZ in schedule" in bad
