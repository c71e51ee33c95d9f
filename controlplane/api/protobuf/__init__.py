"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) as JSON objects.

`kubectl create <generator>` and `kubectl autoscale` send protobuf, never JSON, and do not retry
on 415; the apiserver stores JSON, so `decode_object` turns such a body into the dict kubectl
would have sent as JSON. wire reads the format, schema_* hold the field tables, wellknown converts
Time/Quantity/IntOrString and friends, decode walks the tables.
"""

from controlplane.api.protobuf.decode import decode_object

__all__ = ["decode_object"]
