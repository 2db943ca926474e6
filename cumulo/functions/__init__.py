"""The ML lifecycle as functions: train, evaluate, deploy, predict, alert, drift.

Each capability is an ordinary Cumulo function, declared in a project's YAML
like a user's own (``handler: cumulo.functions.train:train``), so any of them
can be swapped for the user's. They share the event types and lineage of
:mod:`.lineage`, the model registry of :mod:`.model_registry` and the artifact
store of :mod:`.artifacts`; :mod:`.context` hands them out.
"""
