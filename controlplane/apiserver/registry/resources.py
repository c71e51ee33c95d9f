"""What the API serves: every group/version/resource, its kind, scope, names and subresources.

Discovery, routing, storage keys and Tables all read this one table. The strategy of each
resource holds its policy (see `strategy`). A resource served in several versions is stored once,
as one of them: the others name a `Conversion` to it (see `conversion`), and share its key
prefix, its watch cache and its strategy, which sees only the storage form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.apiserver.registry import strategy_apps as apps
from controlplane.apiserver.registry import strategy_core as core
from controlplane.apiserver.registry.conversion import Conversion
from controlplane.apiserver.registry.conversion_autoscaling import HPA_V1
from controlplane.apiserver.registry.conversion_events import EVENTS_V1
from controlplane.apiserver.registry.strategy import NoStatusStrategy, Strategy
from controlplane.apiserver.registry.strategy_autoscaling import HorizontalPodAutoscalerStrategy

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    group: str = ""  # of the kind, when it differs (scale -> autoscaling/v1 Scale)
    version: str = ""
    verbs: tuple[str, ...] = SUB_VERBS


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    resource: str  # plural, lower case: the URL segment
    kind: str
    namespaced: bool
    strategy: Strategy  # of the storage form
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    conversion: Conversion | None = None  # to the version it is stored as; None: stored as is
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def key_prefix(self) -> str:
        """`/registry/<resource>/`: everything of this resource lives below it."""
        return f"/registry/{self.resource}/"

    def key(self, namespace: str, name: str) -> str:
        return f"{self.key_prefix}{namespace}/{name}" if self.namespaced else (
            f"{self.key_prefix}{name}")

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    def __repr__(self) -> str:
        return f"<ResourceInfo {self.resource}.{self.group_version}>"


STATUS = Subresource("status", "")  # kind filled per resource below
SCALE = Subresource("scale", "Scale", "autoscaling", "v1")


def _status(kind: str) -> Subresource:
    return Subresource("status", kind)


def _r(group: str, version: str, resource: str, kind: str, namespaced: bool, strat: Strategy,
       *, short: tuple[str, ...] = (), all_: bool = False, subs: tuple[Subresource, ...] = (),
       stored_as: Conversion | None = None, verbs: tuple[str, ...] = ALL_VERBS) -> ResourceInfo:
    return ResourceInfo(group, version, resource, kind, namespaced, strat, short,
                        ("all",) if all_ else (), verbs, subs, stored_as)


EVENTS = core.EventStrategy()  # core/v1 Events, also served as events.k8s.io/v1
HPAS = HorizontalPodAutoscalerStrategy()  # autoscaling/v2, also served as autoscaling/v1

RESOURCES: tuple[ResourceInfo, ...] = (
    _r("", "v1", "namespaces", "Namespace", False, core.NamespaceStrategy(), short=("ns",),
       subs=(_status("Namespace"), Subresource("finalize", "Namespace", verbs=("update",)))),
    _r("", "v1", "pods", "Pod", True, core.PodStrategy(), short=("po",), all_=True,
       subs=(_status("Pod"), Subresource("binding", "Binding", verbs=("create",)),
             Subresource("eviction", "Eviction", "policy", "v1", verbs=("create",)),
             Subresource("log", "Pod", verbs=("get",)),
             Subresource("exec", "PodExecOptions", verbs=("create", "get")),
             Subresource("attach", "PodAttachOptions", verbs=("create", "get")))),
    _r("", "v1", "nodes", "Node", False, core.NodeStrategy(), short=("no",),
       subs=(_status("Node"),)),
    _r("", "v1", "services", "Service", True, core.ServiceStrategy(), short=("svc",),
       all_=True, subs=(_status("Service"),)),
    _r("", "v1", "endpoints", "Endpoints", True, NoStatusStrategy(), short=("ep",)),
    _r("", "v1", "configmaps", "ConfigMap", True, NoStatusStrategy(), short=("cm",)),
    _r("", "v1", "secrets", "Secret", True, core.SecretStrategy()),
    _r("", "v1", "serviceaccounts", "ServiceAccount", True, NoStatusStrategy(), short=("sa",)),
    _r("", "v1", "events", "Event", True, EVENTS, short=("ev",)),
    _r("apps", "v1", "deployments", "Deployment", True, apps.DeploymentStrategy(),
       short=("deploy",), all_=True, subs=(_status("Deployment"), SCALE)),
    _r("apps", "v1", "replicasets", "ReplicaSet", True, apps.ReplicaSetStrategy(),
       short=("rs",), all_=True, subs=(_status("ReplicaSet"), SCALE)),
    _r("apps", "v1", "daemonsets", "DaemonSet", True, apps.DaemonSetStrategy(), short=("ds",),
       all_=True, subs=(_status("DaemonSet"),)),
    _r("apps", "v1", "controllerrevisions", "ControllerRevision", True, NoStatusStrategy()),
    _r("batch", "v1", "jobs", "Job", True, apps.JobStrategy(), all_=True,
       subs=(_status("Job"),)),
    _r("batch", "v1", "cronjobs", "CronJob", True, apps.CronJobStrategy(), short=("cj",),
       all_=True, subs=(_status("CronJob"),)),
    _r("coordination.k8s.io", "v1", "leases", "Lease", True, NoStatusStrategy()),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, NoStatusStrategy()),
    _r("events.k8s.io", "v1", "events", "Event", True, EVENTS, short=("ev",),
       stored_as=EVENTS_V1),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", True, NoStatusStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True,
       NoStatusStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False,
       NoStatusStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
       NoStatusStrategy()),
    _r("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
       HPAS, short=("hpa",), all_=True, subs=(_status("HorizontalPodAutoscaler"),)),
    _r("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
       HPAS, short=("hpa",), subs=(_status("HorizontalPodAutoscaler"),), stored_as=HPA_V1),
)

# Preferred versions first where a group serves several.
GROUP_VERSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("v1",)),
    ("apps", ("v1",)),
    ("batch", ("v1",)),
    ("autoscaling", ("v2", "v1")),
    ("coordination.k8s.io", ("v1",)),
    ("discovery.k8s.io", ("v1",)),
    ("events.k8s.io", ("v1",)),
    ("rbac.authorization.k8s.io", ("v1",)),
)


def lookup(group: str, version: str, resource: str) -> ResourceInfo | None:
    for info in RESOURCES:
        if (info.group, info.version, info.resource) == (group, version, resource):
            return info
    return None


def in_group_version(group: str, version: str) -> list[ResourceInfo]:
    return [i for i in RESOURCES if (i.group, i.version) == (group, version)]
