"""The CronJob controller: schedule (cron parsing, next activation), logic (what to run, what
to prune; pure) and controller (informer handlers and sync)."""

from controlplane.controllers.cronjob.controller import CronJobController

__all__ = ["CronJobController"]
