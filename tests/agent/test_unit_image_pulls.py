"""Image pulls over the fake CRI: pull policies, ErrImagePull -> ImagePullBackOff timing with a
fake clock, ErrImageNeverPull, pull secrets; and the restart back-off on its own."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest

from agent.image_pulls import ImageError, ImageManager, auth_for, default_pull_policy
from agent.restart_backoff import RestartBackoff
from controlplane.client.events import FakeRecorders
from cri import errors
from cri.fake import FakeRuntime

Object = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


def pod(uid: str = "u1", secrets: tuple[str, ...] = ()) -> Object:
    return {"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"imagePullSecrets": [{"name": s} for s in secrets]}}


def ctr(image: str, policy: str | None = None) -> Object:
    return {"name": "main", "image": image, **({"imagePullPolicy": policy} if policy else {})}


def setup(*images: str, secrets: dict[str, Object] | None = None) -> tuple[
        FakeRuntime, ImageManager, FakeRecorders, Clock]:
    runtime = FakeRuntime(images=images)
    recorders = FakeRecorders()
    clock = Clock()
    manager = ImageManager(runtime, recorders.recorder("kubelet"),
                           secret=lambda ns, name: (secrets or {}).get(name), clock=clock)
    return runtime, manager, recorders, clock


def unreachable() -> errors.CRIError:
    return errors.Unavailable("fake", "ImageService/PullImage", grpc.StatusCode.UNAVAILABLE,
                              "dial tcp: lookup registry-1.docker.io: no such host")


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("localhost:5000/x", "Always"),
    ("busybox:1.36", "IfNotPresent"), ("localhost:5000/x:2", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent")])
def test_default_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


async def test_if_not_present_uses_what_is_there() -> None:
    runtime, manager, recorders, _ = setup("localhost/busybox:1")
    await manager.ensure(pod(), ctr("localhost/busybox:1", "IfNotPresent"))
    assert runtime.called("pull_image") == []
    [event] = recorders.events
    assert (event.reason, event.message) == (
        "Pulled", 'Container image "localhost/busybox:1" already present on machine')


async def test_always_pulls_even_when_present() -> None:
    runtime, manager, recorders, _ = setup("docker.io/library/busybox:latest")
    await manager.ensure(pod(), ctr("busybox"))  # no policy: Always for an untagged image
    assert runtime.called("pull_image") == [("busybox",)]
    assert [e.reason for e in recorders.events] == ["Pulling", "Pulled"]
    assert recorders.events[0].message == 'Pulling image "busybox"'
    assert recorders.events[1].message.startswith('Successfully pulled image "busybox" in ')


async def test_never_with_a_missing_image() -> None:
    runtime, manager, recorders, _ = setup()
    with pytest.raises(ImageError) as caught:
        await manager.ensure(pod(), ctr("example.test/x:1", "Never"))
    message = 'Container image "example.test/x:1" is not present with pull policy of Never'
    assert (caught.value.reason, caught.value.message) == ("ErrImageNeverPull", message)
    assert runtime.called("pull_image") == []
    [event] = recorders.events
    assert (event.type, event.reason, event.message) == ("Warning", "ErrImageNeverPull",
                                                         message)


async def test_never_with_a_present_image_does_nothing() -> None:
    runtime, manager, recorders, _ = setup("example.test/x:1")
    await manager.ensure(pod(), ctr("example.test/x:1", "Never"))
    assert runtime.called("pull_image") == [] and recorders.events == []


async def test_failed_pulls_back_off_10s_doubling_per_pod() -> None:
    runtime, manager, recorders, clock = setup()
    image = "example.test/x:1"
    runtime.fail_pulls[image] = unreachable()
    reasons = []
    for wait in (10, 20, 40):
        with pytest.raises(ImageError) as caught:
            await manager.ensure(pod(), ctr(image))
        reasons.append(caught.value.reason)
        assert caught.value.message.startswith(f'Failed to pull image "{image}": dial tcp')
        clock.t += wait - 1
        with pytest.raises(ImageError) as caught:
            await manager.ensure(pod(), ctr(image))
        assert caught.value.reason == "ImagePullBackOff"
        assert caught.value.message == f'Back-off pulling image "{image}"'
        clock.t += 1
    assert reasons == ["ErrImagePull"] * 3
    assert len(runtime.called("pull_image")) == 3
    # another pod of the same image is not held back by this pod's back-off
    with pytest.raises(ImageError) as caught:
        await manager.ensure(pod("u2"), ctr(image))
    assert caught.value.reason == "ErrImagePull"
    # a success ends the back-off
    del runtime.fail_pulls[image]
    await manager.ensure(pod(), ctr(image))
    assert (await runtime.image_status(image)) is not None
    reasons_seen = [e.reason for e in recorders.events]
    assert {"Pulling", "Failed", "BackOff", "Pulled"} <= set(reasons_seen)
    assert ("Warning", "Error: ErrImagePull") in {(e.type, e.message) for e in recorders.events}


async def test_back_off_is_capped_at_300s_and_forgotten_when_idle() -> None:
    runtime, manager, _, clock = setup()
    image = "example.test/x:1"
    runtime.fail_pulls[image] = unreachable()
    for _ in range(7):
        with pytest.raises(ImageError):
            await manager.ensure(pod(), ctr(image))
        clock.t += 301
    assert len(runtime.called("pull_image")) == 7
    with pytest.raises(ImageError):
        await manager.ensure(pod(), ctr(image))
    clock.t += 299
    with pytest.raises(ImageError, match="Back-off"):
        await manager.ensure(pod(), ctr(image))
    clock.t += 1000  # the pod is long gone: its entry goes
    with pytest.raises(ImageError):
        await manager.ensure(pod("u9"), ctr(image))
    assert all(key[0] == "u9" for key in manager._backoff)


def docker_config(server: str, user: str, password: str) -> Object:
    raw = json.dumps({"auths": {server: {"auth": base64.b64encode(
        f"{user}:{password}".encode()).decode()}}})
    return {"data": {".dockerconfigjson": base64.b64encode(raw.encode()).decode()}}


async def test_pull_secrets_are_sent_for_their_registry() -> None:
    secrets = {"regcred": docker_config("https://index.docker.io/v1/", "me", "pw"),
               "other": docker_config("quay.io", "q", "x")}
    assert auth_for("busybox", list(secrets.values())).username == "me"  # type: ignore[union-attr]
    assert auth_for("quay.io/a/b:1", list(secrets.values())).username == "q"  # type: ignore
    assert auth_for("example.test/a:1", list(secrets.values())) is None
    assert auth_for("busybox", [{"data": {".dockerconfigjson": "not base64!"}}]) is None
    runtime, manager, _, _ = setup()
    manager.secret = lambda ns, name: secrets.get(name)
    await manager.ensure(pod(secrets=("missing", "regcred")), ctr("busybox:1", "Always"))
    assert runtime.called("pull_image") == [("busybox:1",)]


# -- the restart back-off ------------------------------------------------------------------


def test_restart_backoff_counts_from_the_exit() -> None:
    clock = Clock()
    backoff = RestartBackoff(clock)
    assert backoff.remaining("u/app") == 0  # the first restart is immediate
    backoff.restarted("u/app", ran_for=1)
    assert backoff.delay("u/app") == 10
    clock.t += 5  # the restarted container ran 5 s, then exited
    assert backoff.remaining("u/app", exited_at=clock.t) == 10
    assert backoff.remaining("u/app") == 5  # no exit time: from the restart
    clock.t += 10
    assert backoff.remaining("u/app", exited_at=clock.t - 10) == 0
    backoff.restarted("u/app", ran_for=5)
    assert backoff.delay("u/app") == 20


def test_restart_backoff_caps_resets_and_forgets() -> None:
    clock = Clock()
    backoff = RestartBackoff(clock)
    for _ in range(10):
        backoff.restarted("u/app", ran_for=1)
    assert backoff.delay("u/app") == 300
    clock.t += 600  # exited 10 minutes after its last restart: may restart at once
    assert backoff.remaining("u/app", exited_at=clock.t) == 0
    backoff.restarted("u/app", ran_for=600)
    assert backoff.delay("u/app") == 10
    backoff.restarted("v/app", ran_for=1)
    backoff.forget_pod("u")
    assert backoff.remaining("u/app") == 0 and backoff.remaining("v/app") == 10
