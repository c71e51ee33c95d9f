"""Creating and deleting a workload controller's pods (Kubernetes' PodControl and slowStartBatch).

`PodControl.create` raises the owner's expectations by `count`, then creates pods in slow-start
batches (1, 2, 4, ...): a batch with a failure stops the rest, so a quota or admission error
costs a few calls, not hundreds. `PodControl.delete` expects the victims' deletion and deletes
them at once (a pod already gone counts as deleted). Both record SuccessfulCreate/FailedCreate
and SuccessfulDelete/FailedDelete events on the owner, lower the expectations for every write
that failed or was never tried (its watch event will never come), and raise the first failure,
so the sync is retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from controlplane.api import errors
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import PODS
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import Controller
from controlplane.controllers.expectations import Expectations

Object = dict[str, Any]


async def slow_start_batch(count: int, initial: int,
                           fn: Callable[[], Awaitable[None]]) -> tuple[int, Exception | None]:
    """Call `fn` `count` times in batches of initial, 2*initial, ...; stop after a batch with a
    failure. Return (successes, the first error)."""
    successes, remaining, batch = 0, count, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        if failures:
            first = failures[0]
            if not isinstance(first, Exception):
                raise first
            return successes, first
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


class PodControl:
    """Pod writes on behalf of `controller`, keyed in its `expectations` by the owner's key."""

    def __init__(self, controller: Controller, expectations: Expectations) -> None:
        self.controller = controller
        self.expectations = expectations

    async def create(self, owner: Object, key: str, count: int, make: Callable[[], Object], *,
                     initial: int = 1) -> int:
        """Create `count` pods, each built by a call of `make()` (which may raise to refuse), in
        the owner's namespace; return how many were created."""
        self.expectations.expect_creations(key, count)
        namespace = owner["metadata"]["namespace"]

        async def create_one() -> None:
            pod = make()
            try:
                created = await self.controller.client.create(PODS, pod, namespace)
            except errors.APIError as exc:
                self.controller.event(owner, WARNING, "FailedCreate", f"Error creating: {exc}")
                raise
            self.controller.event(owner, NORMAL, "SuccessfulCreate",
                                  f"Created pod: {created['metadata']['name']}")

        successes, error = await slow_start_batch(count, initial, create_one)
        for _ in range(count - successes):
            self.expectations.creation_observed(key)  # failed or never tried: no event comes
        if error is not None:
            raise error
        return successes

    async def delete(self, owner: Object, key: str, victims: list[Object]) -> int:
        """Delete `victims` (pods of the owner) at once; return how many were asked for."""
        self.expectations.expect_deletions(key, [podutil.pod_key(p) for p in victims])

        async def delete_one(pod: Object) -> None:
            m = pod["metadata"]
            try:
                await self.controller.client.delete(PODS, m["name"], m["namespace"])
            except errors.APIError as exc:
                self.expectations.deletion_observed(key, podutil.pod_key(pod))
                if isinstance(exc, errors.NotFound):
                    return
                self.controller.event(owner, WARNING, "FailedDelete", f"Error deleting: {exc}")
                raise
            self.controller.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {m['name']}")

        results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(victims)
