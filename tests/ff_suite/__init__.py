"""functions-framework's own test suite, run against its server and against `cumulo worker`.

`sdist` fetches the tests of the installed functions-framework, `samples` holds the functions
they load (written here: the sdist does not ship them), `shim` is the pytest plugin that serves
each of them from a real server, `runner` runs the suite and collects the outcomes.
"""
