"""Handlers of the rich manifests fixture (rendered, never run)."""


def predict(request):
    return "ok"


def fit(event):
    return None


def enrich(event):
    return None


def steady(event):
    return None
