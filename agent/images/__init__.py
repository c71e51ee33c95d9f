"""Container images without the internet: build, read, import into containerd, push to a registry.

- `layout`: OCI image-layout and docker-archive tars, read and validated in full before any write.
- `build`: the built-in `pause` and `busybox` images, made from Debian's busybox-static.
- `importer`: an archive into containerd's `k8s.io` namespace through its content/images services.
- `registry`: an archive pushed to an OCI registry over the distribution HTTP API.
- `main`: the `pinnace images` command.
"""
