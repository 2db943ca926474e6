"""Rendering specs to Kubernetes objects (Knative, KEDA, Dapr) lands here."""
