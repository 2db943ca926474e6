"""An HTTP function whose answer is chosen by the ``mode`` in its JSON body."""

import flask


def function(request: flask.Request) -> tuple[str, int]:
    mode = request.get_json()["mode"]
    if mode == "THROW":
        raise RuntimeError("the caller asked for an exception")
    if mode == "SUCCESS":
        return "success", 200
    return "failure", 400
