"""Webhook verification (the providers' published vectors) and the generic webhook source."""

from __future__ import annotations

import json

import pytest

from cumulo.errors import BadSignatureError, InvalidEventError, MissingSignatureError
from cumulo.events.sources.webhook import (
    Delivery,
    WebhookSource,
    hmac_sha256,
    verify_bearer,
    verify_gitea,
    verify_github,
    verify_gitlab,
    verify_hmac,
)
from cumulo.spec.models import EventSource
from tests.events.sources.conftest import payload

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_DIGEST = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GITEA_SECRET = "IsWishesWereHorsesWedAllBeEatingSteak!"
GITEA_DIGEST = "60fe446c74fa0cb9474f98cc557db79e10c7aaf22cf324ad65239600b9e4d915"


def test_github_official_vector():
    assert hmac_sha256(GITHUB_SECRET, b"Hello, World!") == GITHUB_DIGEST
    headers = {"x-hub-signature-256": f"sha256={GITHUB_DIGEST}"}
    verify_github(headers, b"Hello, World!", GITHUB_SECRET)
    with pytest.raises(BadSignatureError, match="X-Hub-Signature-256"):
        verify_github(headers, b"Hello, World?", GITHUB_SECRET)
    with pytest.raises(BadSignatureError, match="sha256="):
        verify_github({"x-hub-signature-256": GITHUB_DIGEST}, b"Hello, World!", GITHUB_SECRET)
    with pytest.raises(MissingSignatureError, match="X-Hub-Signature-256"):
        verify_github({}, b"Hello, World!", GITHUB_SECRET)


def test_gitea_vector_over_its_real_payload():
    body = payload("gitea")
    assert hmac_sha256(GITEA_SECRET, body) == GITEA_DIGEST
    verify_gitea({"x-gitea-signature": GITEA_DIGEST}, body, GITEA_SECRET)
    with pytest.raises(BadSignatureError):
        verify_gitea({"x-gitea-signature": GITEA_DIGEST}, body + b" ", GITEA_SECRET)


def test_gitlab_token_bearer_and_generic_hmac():
    verify_gitlab({"x-gitlab-token": "sampleToken!"}, b"", "sampleToken!")
    with pytest.raises(BadSignatureError):
        verify_gitlab({"x-gitlab-token": "sampleToken"}, b"", "sampleToken!")
    verify_bearer({"authorization": "Bearer s3cret"}, b"", "s3cret")
    with pytest.raises(BadSignatureError, match="Bearer"):
        verify_bearer({"authorization": "Basic s3cret"}, b"", "s3cret")
    with pytest.raises(MissingSignatureError, match="Authorization"):
        verify_bearer({}, b"", "s3cret")
    verify_hmac({"x-cumulo-signature": "sha256=" + hmac_sha256("k", b"{}")}, b"{}", "k")


def test_a_wrong_signature_names_the_header_but_never_the_secret():
    with pytest.raises(BadSignatureError) as raised:
        verify_gitlab({"x-gitlab-token": "guess"}, b"", "the-real-token")
    assert "the-real-token" not in str(raised.value)
    assert "guess" not in str(raised.value)


def webhook(**spec) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": "hook"}, "spec": {"webhook": spec}})


async def test_json_body_becomes_an_event_and_an_idempotency_key_publishes_once(
    recorder, deliveries
):
    source = WebhookSource(webhook(), recorder, deliveries, None)
    headers = {"content-type": "application/json", "idempotency-key": "order-7"}
    first = await source.handle(Delivery(headers, b'{"order": 7}'))
    again = await source.handle(Delivery(headers, b'{"order": 7}'))

    assert first.status == again.status == 202
    assert again.body["duplicate"] is True
    [event] = recorder.events
    assert event.type == "dev.cumulo.webhook.received"
    assert event.source == "/cumulo/sources/hook"
    assert event.id == "order-7"
    assert event.data == {"order": 7}
    assert (source.stats.published, source.stats.duplicates) == (1, 1)


async def test_other_bodies_keep_their_bytes_and_content_type(recorder, deliveries):
    source = WebhookSource(webhook(), recorder, deliveries, None)
    await source.handle(Delivery({"content-type": "text/csv"}, b"a,b\n1,2\n"))
    await source.handle(Delivery({}, b"\x00\x01"))
    csv, raw = recorder.events
    assert (csv.data, csv.attributes["datacontenttype"]) == (b"a,b\n1,2\n", "text/csv")
    assert raw.attributes["datacontenttype"] == "application/octet-stream"
    assert csv.id != raw.id


async def test_a_cloudevent_passes_through_unchanged(recorder, deliveries):
    source = WebhookSource(webhook(), recorder, deliveries, None)
    envelope = {
        "specversion": "1.0",
        "id": "x-1",
        "source": "/elsewhere",
        "type": "t.x",
        "datacontenttype": "application/json",
        "data": {"a": 1},
    }
    headers = {"content-type": "application/cloudevents+json"}
    await source.handle(Delivery(headers, json.dumps(envelope).encode()))
    [event] = recorder.events
    assert event.attributes == {k: v for k, v in envelope.items() if k != "data"}
    assert event.data == {"a": 1}


async def test_refused_deliveries_are_counted_and_never_published(recorder, deliveries):
    spec = {"auth": "hmac", "secret": {"name": "hook"}}
    source = WebhookSource(webhook(**spec), recorder, deliveries, "k")
    json_headers = {"content-type": "application/json"}
    with pytest.raises(MissingSignatureError):
        await source.handle(Delivery(json_headers, b"{}"))
    with pytest.raises(BadSignatureError):
        await source.handle(Delivery({**json_headers, "x-cumulo-signature": "sha256=00"}, b"{}"))
    signed = {**json_headers, "x-cumulo-signature": "sha256=" + hmac_sha256("k", b"{nope")}
    with pytest.raises(InvalidEventError, match="JSON"):
        await source.handle(Delivery(signed, b"{nope"))

    assert recorder.events == []
    assert source.stats.rejected == {"missing-signature": 1, "bad-signature": 1, "invalid-body": 1}


def test_auth_without_a_secret_is_a_spec_error_and_refs_name_their_variable():
    with pytest.raises(ValueError, match="needs a secret"):
        webhook(auth="bearer")
    source = webhook(auth="bearer", secret={"name": "ci-hook", "key": "token"})
    assert source.spec.webhook.secret.variable == "CI_HOOK_TOKEN"
    source = webhook(auth="bearer", secret={"name": "x", "env": "MY_TOKEN"})
    assert source.spec.webhook.secret.variable == "MY_TOKEN"
