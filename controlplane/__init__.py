"""The control plane: apiserver (the only etcd client), client library, scheduler, controllers."""
