"""The cloud-controller-manager's pieces: the provider interface (`provider`), providers by name
(`registry`; `local` is the built-in one, over an address `pool` and an instances directory),
and the cloud controllers (`service`, `node`, `nodelifecycle`) listed in `manager`."""
