"""Uses ``flask.current_app`` while being imported, so it needs an app context then."""

import flask

LOADED_BY = flask.current_app.name


def function(request: flask.Request) -> str:
    return f"loaded by {LOADED_BY}"
