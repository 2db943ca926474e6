"""A plain module beside the function, found because its folder is importable."""

TEXT = "Hello"
