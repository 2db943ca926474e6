"""The alert function against a real webhook receiver (aiohttp) and a real SMTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cloudevents.http import CloudEvent

from cumulo.config import FunctionSettings
from cumulo.errors import PermanentError, Retry
from cumulo.events.event import new_event
from cumulo.events.lineage import MODEL_DRIFTED, MODEL_REJECTED, RUN_FAILED
from cumulo.functions.alert import AlertState, alert, incident_key, send_alert
from cumulo.functions.channels import render, shown_url
from cumulo.functions.context import FunctionContext, as_event
from tests.servers.mail import MailServer, free_port

LOG_TAIL = (
    "loading data\nfitting 3 folds\nTraceback (most recent call last):\nValueError: bad column"
)


class WebhookReceiver:
    """Records every JSON body POSTed to /hook; answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.url = ""

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The bodies it accepted (answered 2xx)."""
        return [body for status, body, _ in self.requests if status < 300]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((self.status, body, dict(request.headers)))
        return web.Response(status=self.status, text="ok" if self.status < 300 else "no")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


Make = Callable[..., FunctionContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> Make:
    def make(**params: Any) -> FunctionContext:
        settings = FunctionSettings(function="alert", state_dir=tmp_path, params=params)
        return FunctionContext(settings)

    return make


def webhook(receiver: WebhookReceiver, **more: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url, **more}


def smtp(server: MailServer) -> dict[str, Any]:
    return {
        "kind": "smtp",
        "host": server.host,
        "port": server.port,
        "sender": "cumulo@example.com",
        "to": ["oncall@example.com", "ml@example.com"],
    }


def run_failed(function: str = "train", error: str = "ValueError", **more: Any) -> CloudEvent:
    data = {
        "function": function,
        "run": "r-123",
        "event": "e-1",
        "eventType": "dev.cumulo.dataset.ready",
        "errorType": error,
        "message": "bad column 'age'",
        "attempt": 3,
        "logTail": LOG_TAIL,
        "lineage": {"datasetUri": "s3://data/churn.csv", "runId": "r-123"},
        **more,
    }
    attributes = {"type": RUN_FAILED, "source": f"/cumulo/functions/{function}"}
    return CloudEvent({**attributes, "subject": function}, data)


def state(ctx: FunctionContext) -> AlertState:
    return AlertState(
        ctx.settings.state_dir / "alerts.db", ctx.name, window=3600, rate_count=10, rate_per=60
    )


# --- what each channel gets ------------------------------------------------------------


def test_webhook_gets_slack_json_with_the_error_and_log_tail(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver, headers={"X-Token": "t0k"})])
    send_alert(ctx, run_failed())

    [(status, body, headers)] = receiver.requests
    assert status == 200
    assert headers["X-Token"] == "t0k"
    assert headers["Content-Type"] == "application/json"
    assert body["text"].startswith("Run failed: train (ValueError)\n\n")
    assert "ValueError: bad column 'age'" in body["text"]
    assert f"```\n{LOG_TAIL}\n```" in body["text"]
    assert "Attempt: 3" in body["text"]
    assert "datasetUri=s3://data/churn.csv" in body["text"]
    header, section = body["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "Run failed: train (ValueError)"}
    assert section["text"]["type"] == "mrkdwn"
    assert LOG_TAIL in section["text"]["text"]


def test_email_has_the_title_as_subject_and_the_log_tail(smtp_server, make_ctx):
    send_alert(make_ctx(channels=[smtp(smtp_server)]), run_failed())

    [mail] = smtp_server.messages
    assert mail.mail_from == "cumulo@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "ml@example.com"]
    assert mail.subject == "Run failed: train (ValueError)"
    assert mail.message["To"] == "oncall@example.com, ml@example.com"
    assert "ValueError: bad column 'age'" in mail.body
    assert LOG_TAIL in mail.body


def test_the_default_channel_is_the_log(make_ctx, capsys):
    send_alert(make_ctx(), run_failed())

    out = capsys.readouterr().out
    assert out.startswith("ALERT Run failed: train (ValueError)\n")
    assert LOG_TAIL in out


def test_the_cloud_event_function_reads_its_settings(receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("CUMULO_FUNCTION", "alert")
    monkeypatch.setenv("CUMULO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CUMULO_PARAMS", json.dumps({"channels": [webhook(receiver)]}))

    assert alert(run_failed()) is None
    assert len(receiver.bodies) == 1
    assert (tmp_path / "alerts.db").is_file()


def test_rejected_drifted_and_other_events_read_well():
    rejected = new_event(
        MODEL_REJECTED,
        "/cumulo/functions/evaluate",
        {
            "model": "churn",
            "version": 7,
            "reason": "accuracy below the champion's",
            "metric": "accuracy",
            "candidate": {"metrics": {"accuracy": 0.81}},
            "champion": {"version": 6, "metrics": {"accuracy": 0.86}},
        },
    )
    message = render(rejected)
    assert message.title == "Model rejected: churn v7"
    assert "Candidate v7: accuracy = 0.81" in message.text
    assert "Champion v6: accuracy = 0.86" in message.text

    drifted = new_event(
        MODEL_DRIFTED,
        "/cumulo/functions/drift",
        {
            "model": "churn",
            "version": 6,
            "dataset": "s3://d/x.csv",
            "threshold": 0.2,
            "psi": {"age": 0.91, "tenure": 0.01},
            "drifted": ["age"],
        },
    )
    message = render(drifted)
    assert message.title == "Model drifted: churn v6"
    assert "• age: PSI 0.91" in message.text
    assert "tenure" not in message.text

    other = new_event("com.example.thing.happened", "/x", {"n": 1}, subject="thing")
    message = render(other)
    assert message.title == "com.example.thing.happened: thing"
    assert '"n": 1' in message.text


# --- one page per incident --------------------------------------------------------------


def test_fifty_identical_failures_page_once_per_channel(receiver, smtp_server, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver), smtp(smtp_server)])
    for _ in range(50):
        send_alert(ctx, run_failed())

    assert len(receiver.requests) == 1
    assert len(smtp_server.messages) == 1
    [incident] = state(ctx).incidents()
    assert incident["key"] == "dev.cumulo.run.failed|train|ValueError"
    assert incident["duplicates"] == 49


def test_a_different_incident_still_pages(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver)])
    send_alert(ctx, run_failed())
    send_alert(ctx, run_failed())
    send_alert(ctx, run_failed(error="MemoryError"))
    send_alert(ctx, run_failed(function="evaluate"))

    titles = [body["blocks"][0]["text"]["text"] for body in receiver.bodies]
    assert titles == [
        "Run failed: train (ValueError)",
        "Run failed: train (MemoryError)",
        "Run failed: evaluate (ValueError)",
    ]


def test_concurrent_duplicates_page_once(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver)])
    events = [run_failed() for _ in range(8)]
    threads = [threading.Thread(target=send_alert, args=(ctx, event)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(receiver.requests) == 1
    assert state(ctx).incidents()[0]["duplicates"] == 7


def test_after_the_window_the_incident_pages_again_with_its_repeats(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver)], dedupWindow="1s")
    for _ in range(3):
        send_alert(ctx, run_failed())
    time.sleep(1.1)
    send_alert(ctx, run_failed())

    first, second = receiver.bodies
    assert "were not paged" not in first["text"]
    assert "2 more occurrence(s) in the previous window were not paged" in second["text"]


def test_the_rate_limit_caps_a_burst_and_counts_the_rest(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver)], rateLimit={"count": 3, "per": "1m"})
    for n in range(10):
        send_alert(ctx, run_failed(function=f"train-{n}"))

    assert len(receiver.requests) == 3
    incidents = state(ctx).incidents()
    assert len(incidents) == 10
    assert sum(incident["rate_limited"] for incident in incidents) == 7


def test_an_incident_held_back_by_the_rate_limit_pages_when_it_recurs_later(receiver, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver)], rateLimit={"count": 1, "per": "1s"})
    send_alert(ctx, run_failed(function="a"))
    send_alert(ctx, run_failed(function="b"))  # held back
    assert [i["rate_limited"] for i in state(ctx).incidents() if "|b|" in i["key"]] == [1]
    time.sleep(1.1)
    send_alert(ctx, run_failed(function="b"))

    titles = [body["blocks"][0]["text"]["text"] for body in receiver.bodies]
    assert titles == ["Run failed: a (ValueError)", "Run failed: b (ValueError)"]


# --- failing channels --------------------------------------------------------------------


def test_a_failing_webhook_retries_without_mailing_twice(receiver, smtp_server, make_ctx):
    ctx = make_ctx(channels=[webhook(receiver), smtp(smtp_server)])
    event = run_failed()
    receiver.status = 500
    with pytest.raises(Retry, match=rf"webhook {receiver.url}.*HTTP 500"):
        send_alert(ctx, event)
    assert len(smtp_server.messages) == 1

    receiver.status = 200
    send_alert(ctx, event)  # the platform's retry

    assert len(receiver.bodies) == 1
    assert len(smtp_server.messages) == 1
    send_alert(ctx, run_failed())  # and the incident is now paged everywhere
    assert len(receiver.requests) == 2


def test_a_webhook_that_is_down_is_a_retry_naming_its_url(make_ctx):
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(Retry, match=rf"webhook {url} could not be reached"):
        send_alert(make_ctx(channels=[{"kind": "webhook", "url": url}]), run_failed())


def test_a_webhook_answering_4xx_is_permanent(receiver, make_ctx):
    receiver.status = 400
    with pytest.raises(PermanentError, match="HTTP 400"):
        send_alert(make_ctx(channels=[webhook(receiver)]), run_failed())


def test_an_smtp_server_that_is_down_is_a_retry_naming_it(make_ctx):
    port = free_port()
    channel = {"kind": "smtp", "host": "127.0.0.1", "port": port, "sender": "a@b", "to": ["c@d"]}
    with pytest.raises(Retry, match=rf"smtp 127.0.0.1:{port}"):
        send_alert(make_ctx(channels=[channel]), run_failed())


def test_refused_recipients_are_permanent(smtp_server, make_ctx):
    smtp_server.refuse_recipients = "550 5.1.1 no such user"
    with pytest.raises(PermanentError, match="refused the recipients"):
        send_alert(make_ctx(channels=[smtp(smtp_server)]), run_failed())


# --- params and names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {
            "channels": [
                {"kind": "smtp", "host": "h", "sender": "a@b", "to": ["c@d"], "password": "x"}
            ]
        },
        {"channels": [{"kind": "pager"}]},
        {"channels": [{"kind": "webhook", "url": "ftp://x"}]},
        {"dedupWindow": "soon"},
    ],
)
def test_bad_params_are_permanent(make_ctx, params):
    with pytest.raises(PermanentError, match="alert params"):
        send_alert(make_ctx(**params), run_failed())


def test_urls_are_shown_without_their_secrets():
    url = "https://user:pw@hooks.slack.com/services/T0/B0/XYZ?token=1"
    assert shown_url(url) == "https://hooks.slack.com/services/…"
    assert shown_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"


def test_incident_keys():
    assert incident_key(as_event(run_failed())) == "dev.cumulo.run.failed|train|ValueError"
    drifted = new_event(MODEL_DRIFTED, "/f/drift", {"model": "churn"}, subject="churn")
    assert incident_key(drifted) == "dev.cumulo.model.drifted|churn|"
    assert incident_key(new_event("x.y", "/src")) == "x.y|/src|"


def test_a_failure_of_the_alert_function_itself_is_logged_not_paged(receiver, make_ctx, caplog):
    ctx = make_ctx(channels=[webhook(receiver)])  # the function is named "alert"
    with caplog.at_level("WARNING", logger="cumulo.functions.alert"):
        send_alert(ctx, run_failed(function="alert", error="Retry"))

    assert receiver.requests == []
    assert "not paging a failure of alert itself" in caplog.text


def test_the_events_data_params_cannot_redirect_alerts(receiver, make_ctx):
    event = run_failed(params={"channels": [{"kind": "webhook", "url": "http://evil.example"}]})
    send_alert(make_ctx(channels=[webhook(receiver)]), event)

    assert len(receiver.bodies) == 1
