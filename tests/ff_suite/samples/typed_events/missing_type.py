"""A typed function that says nowhere what its input is: loading it fails."""

import functions_framework


@functions_framework.typed
def function_typed_missing_type_information(value):  # type: ignore[no-untyped-def]
    return value
