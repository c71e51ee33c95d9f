"""The controller-manager: one module per controller, each a sync(key) over informer caches."""
