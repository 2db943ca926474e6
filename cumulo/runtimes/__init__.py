"""Function hosts: the worker (the container entrypoint) and the local runtime."""
