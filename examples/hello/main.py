"""Hello, Cumulo: an HTTP function, an event chain, and a cron heartbeat.

``hello`` is plain functions-framework code, declared in cumulo.yaml. The
others are declared with ``@cumulo.function`` right here: both routes give the
platform the same Function objects.
"""

import functions_framework

import cumulo


@functions_framework.http
def hello(request):
    name = request.args.get("name", "world")
    return {"message": f"Hello, {name}!"}


@cumulo.function(
    triggers=[cumulo.on(type="dev.cumulo.example.greeting.requested")],
    emits=["dev.cumulo.example.greeting.made"],
)
@functions_framework.cloud_event
def greet(event):
    name = (event.data or {}).get("name", "world")
    return {"type": "dev.cumulo.example.greeting.made", "data": {"greeting": f"Hello, {name}!"}}


@cumulo.function(triggers=[cumulo.on(type="dev.cumulo.example.greeting.made")])
@functions_framework.cloud_event
def record(event):
    print(f"recorded: {event.data['greeting']}", flush=True)


@cumulo.function(
    triggers=[cumulo.on(type="dev.cumulo.cron.tick", source="/cumulo/sources/heartbeat")]
)
@functions_framework.cloud_event
def heartbeat(event):
    print(f"heartbeat at {event['time']}", flush=True)
