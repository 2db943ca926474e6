"""Webhook verification (the providers' published vectors) and the generic webhook source."""

from __future__ import annotations

import base64
import json
import time

import pytest

from cumulo.errors import (
    BadSignatureError,
    InvalidEventError,
    MissingSignatureError,
    SourceError,
    StaleDeliveryError,
)
from cumulo.events.sources.signatures import (
    hmac_sha256,
    standard_key,
    standard_signature,
    verify_bearer,
    verify_gitea,
    verify_github,
    verify_gitlab,
    verify_hmac,
    verify_standard,
)
from cumulo.events.sources.webhook import Delivery, WebhookSource
from cumulo.runtimes.local.sources import SqliteDeliveries
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


# --- Standard Webhooks ----------------------------------------------------------------

# The example of the Standard Webhooks reference libraries (standard-webhooks/standard-webhooks).
SWH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SWH_ID, SWH_TIMESTAMP = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
SWH_BODY = b'{"test": 2432232314}'
SWH_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SWH_HEADERS = {
    "webhook-id": SWH_ID,
    "webhook-timestamp": str(SWH_TIMESTAMP),
    "webhook-signature": SWH_SIGNATURE,
}


def at(seconds: float):
    return lambda: float(seconds)


def test_standard_webhooks_reference_vector():
    key = standard_key(SWH_SECRET, "swh")
    assert "v1," + standard_signature(key, SWH_ID, str(SWH_TIMESTAMP), SWH_BODY) == SWH_SIGNATURE
    verify_standard(SWH_HEADERS, SWH_BODY, key, 300, now=at(SWH_TIMESTAMP + 299))
    rotated = {**SWH_HEADERS, "webhook-signature": f"v1,bm90IGl0 v1a,xyz {SWH_SIGNATURE}"}
    verify_standard(rotated, SWH_BODY, key, 300, now=at(SWH_TIMESTAMP))
    with pytest.raises(BadSignatureError, match="webhook-signature"):
        verify_standard(SWH_HEADERS, SWH_BODY + b" ", key, 300, now=at(SWH_TIMESTAMP))
    later = {**SWH_HEADERS, "webhook-timestamp": str(SWH_TIMESTAMP + 1)}
    with pytest.raises(BadSignatureError):  # the timestamp is signed
        verify_standard(later, SWH_BODY, key, 300, now=at(SWH_TIMESTAMP))


@pytest.mark.parametrize("skew", [301, -301, 86400])
def test_standard_webhooks_outside_the_tolerance_is_stale(skew):
    key = standard_key(SWH_SECRET, "swh")
    with pytest.raises(StaleDeliveryError, match="tolerance of 300s") as raised:
        verify_standard(SWH_HEADERS, SWH_BODY, key, 300, now=at(SWH_TIMESTAMP + skew))
    assert (raised.value.status, raised.value.slug) == (401, "timestamp-out-of-tolerance")


@pytest.mark.parametrize(
    ("headers", "error", "match"),
    [
        ({}, MissingSignatureError, "webhook-id"),
        ({"webhook-id": "m"}, MissingSignatureError, "webhook-timestamp"),
        ({"webhook-id": "m", "webhook-timestamp": "1"}, MissingSignatureError, "webhook-signature"),
        ({**SWH_HEADERS, "webhook-timestamp": "soon"}, BadSignatureError, "Unix time"),
        ({**SWH_HEADERS, "webhook-signature": "v2,abc"}, BadSignatureError, "no v1"),
    ],
)
def test_standard_webhooks_refusals_name_the_header(headers, error, match):
    key = standard_key(SWH_SECRET, "swh")
    with pytest.raises(error, match=match):
        verify_standard(headers, SWH_BODY, key, 300, now=at(SWH_TIMESTAMP))


def test_a_standard_webhooks_secret_must_be_whsec_base64():
    assert standard_key("whsec_" + base64.b64encode(b"k").decode(), "s") == b"k"
    for wrong in ("whsec_not base64!", "whsec_"):
        with pytest.raises(SourceError, match="whsec_"):
            standard_key(wrong, "swh")


async def test_a_standard_webhooks_source_keys_events_by_the_signed_id(recorder, deliveries):
    spec = {"auth": "standard-webhooks", "secret": {"name": "swh"}, "tolerance": "10y"}
    with pytest.raises(ValueError, match="duration"):
        webhook(**spec)
    spec["tolerance"] = 10 * 365 * 86400  # the vector is from 2021
    source = WebhookSource(webhook(**spec), recorder, deliveries, SWH_SECRET)
    json_headers = {**SWH_HEADERS, "content-type": "application/json", "idempotency-key": "x"}
    first = await source.handle(Delivery(json_headers, SWH_BODY))
    again = await source.handle(Delivery(json_headers, SWH_BODY))
    assert first.body == {"accepted": 1, "ids": [SWH_ID]}
    assert again.body["duplicate"] is True and SWH_ID in again.body["note"]
    assert recorder.events[0].data == {"test": 2432232314}


# --- replays and what cannot be stored --------------------------------------------------


async def test_an_hmac_signed_body_is_published_once_whatever_its_idempotency_key(
    recorder, deliveries
):
    source = WebhookSource(webhook(auth="hmac", secret={"name": "hook"}), recorder, deliveries, "k")
    signed = {
        "content-type": "application/json",
        "x-cumulo-signature": "sha256=" + hmac_sha256("k", b"{}"),
    }
    replies = [
        await source.handle(Delivery(signed, b"{}")),
        await source.handle(Delivery(signed, b"{}")),
        await source.handle(Delivery({**signed, "idempotency-key": "new"}, b"{}")),
    ]
    assert [r.body["accepted"] for r in replies] == [1, 0, 0]
    assert all("replayed delivery" in r.body["note"] for r in replies[1:])
    assert len(recorder.events) == 1


async def test_unsigned_sources_keep_publishing_repeated_bodies(recorder, deliveries):
    source = WebhookSource(webhook(), recorder, deliveries, None)
    for _ in range(2):
        await source.handle(Delivery({"content-type": "application/json"}, b"{}"))
    assert len(recorder.events) == 2  # no signature: nothing to tell a replay by


async def test_json_that_cannot_be_stored_is_invalid_before_anything_is_published(
    recorder, deliveries
):
    source = WebhookSource(webhook(), recorder, deliveries, None)
    deep = b"[" * 300 + b"]" * 300
    with pytest.raises(InvalidEventError, match="nests deeper than 254 levels"):
        await source.handle(Delivery({"content-type": "application/json"}, deep))
    assert recorder.events == [] and source.stats.rejected == {"invalid-body": 1}


def test_delivery_keys_expire_per_source_and_a_claim_is_all_or_nothing(tmp_path):
    log = SqliteDeliveries(tmp_path / "checkpoints.db")
    try:
        assert log.claim("a", ["id-1", "sha256:x"], window=3600) is None
        seen = log.claim("a", ["id-2", "sha256:x"], window=3600)
        assert seen is not None and seen.key == "sha256:x"
        assert log.claim("a", ["id-2"], window=3600) is None  # the refused claim took nothing
        assert log.claim("b", ["sha256:x"], window=3600) is None  # keys are per source
        time.sleep(0.05)
        assert log.claim("b", ["other"], window=0.01) is None  # trims b's keys only
        assert log.claim("b", ["sha256:x"], window=3600) is None
        assert log.claim("a", ["sha256:x"], window=3600) is not None
        log.release("a", ["sha256:x"])
        assert log.claim("a", ["sha256:x"], window=3600) is None
    finally:
        log.close()
