"""The Job controller: logic (spec defaults, pod states, backoff, when a Job is done; pure),
indexes (Indexed completion mode; pure), tracking (counting pods once with the tracking
finalizer; pure) and controller (informer handlers, sync, API writes)."""

from controlplane.controllers.job.controller import JobController

__all__ = ["JobController"]
