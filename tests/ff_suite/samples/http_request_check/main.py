"""Answers with the request's URL or path, as the framework built them."""

import flask


def function(request: flask.Request) -> str:
    if request.get_json()["mode"] == "url":
        return request.url
    return request.path
