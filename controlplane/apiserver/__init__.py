"""The Kubernetes API server: HTTP handlers, registry, and storage on etcd."""
