"""Image builders (detect, OCI layers, buildah, kaniko, buildpacks) land here."""
