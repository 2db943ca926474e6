"""Streams the running total of the numbers in the body, one line per number."""

from collections.abc import Iterator

import flask


def function(request: flask.Request) -> Iterator[str]:
    numbers = request.get_data(as_text=True).split()

    def running_totals() -> Iterator[str]:
        total = 0.0
        for number in numbers:
            total += float(number)
            yield f"{total}\n"

    return running_totals()
