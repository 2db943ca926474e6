"""Renders a Jinja template from the ``templates`` folder beside this file."""

import flask


def function(request: flask.Request) -> str:
    return flask.render_template("hello.html", name=request.get_json()["message"])
