"""CloudEvents test requests: the shared conformance data, SDK-rendered events, and the oracle.

- :func:`yaml_cases`: the cloudevents/conformance vectors in
  ``../shared/testdata/cloudevents`` (1.0 and 0.3), each in every mode it names;
- :func:`feature_cases`: the HTTP binding ``.feature`` file's examples;
- :func:`sdk_cases`: events the CloudEvents SDK renders (``to_binary``,
  ``to_structured``, batches of them) with text, JSON, binary and no data,
  extensions, values that need percent-encoding and every shape of ``time``;
- :func:`sdk_reading`: the oracle, what the SDK's ``from_http`` gives a
  functions-framework function for a request, and :func:`describe`, which turns
  an SDK event into plain JSON (names, values and Python types) to compare.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http

from cumulo.events.cloudevent import is_json_media_type

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
VECTOR_FILES = ("v1.yaml", "v1_minimum.yaml", "v03.yaml", "v03_minimum.yaml")
# What a conformant sender leaves as it is (HTTP binding 3.1.3.2): printable ASCII but ' "%'.
_UNENCODED = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def shared_testdata() -> Path:
    """``shared/testdata`` beside the repository (found by walking up from here)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no shared/testdata beside the repository")


def percent_encoded(value: str) -> str:
    """A header value as the HTTP binding writes it (UTF-8, then percent-encoding)."""
    return quote(value, safe=_UNENCODED)


# --- requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request to ``POST /events``: text headers (as a server reads them) and body."""

    name: str
    headers: dict[str, str]
    body: bytes

    def with_id_suffix(self, suffix: str) -> Request:
        """The same request with every event's id ending in ``suffix`` (to tell cases apart)."""
        headers = dict(self.headers)
        if "ce-id" in headers:
            headers["ce-id"] += percent_encoded(suffix)
            return dataclasses.replace(self, headers=headers)
        document = json.loads(self.body)
        for envelope in document if isinstance(document, list) else [document]:
            envelope["id"] += suffix
        return dataclasses.replace(self, body=json.dumps(document).encode())

    def wire_headers(self) -> dict[str, str]:
        """The headers for ``urllib``/``http.client``, which write values as latin-1.

        A raw non-ASCII value (the SDK writes one) goes out as its UTF-8 bytes.
        """
        return {name: value.encode().decode("latin-1") for name, value in self.headers.items()}


# --- the conformance vectors -------------------------------------------------------


@dataclass(frozen=True)
class YamlCase:
    """One conformance event: attributes (extensions included), the payload text, the mode."""

    name: str
    mode: str
    attributes: dict[str, str]
    data: str
    transport: dict[str, str]

    def is_json(self) -> bool:
        """Whether the payload travels as JSON: a JSON media type, or none in a JSON envelope."""
        content_type = self.attributes.get("datacontenttype")
        return is_json_media_type(content_type) or (self.mode == "structured" and not content_type)

    def expected_data(self) -> Any:
        """The data an Event decoded from this case holds, per Cumulo's data rules.

        JSON travels decoded; otherwise binary mode gives the body's bytes and
        the JSON format the string it holds.
        """
        if self.is_json():
            return json.loads(self.data)
        return self.data if self.mode == "structured" else self.data.encode()

    def envelope(self) -> dict[str, Any]:
        """The case in the JSON event format."""
        return {**self.attributes, "data": json.loads(self.data) if self.is_json() else self.data}

    def request(self) -> Request:
        """The request a conformant sender makes of this case, in its mode."""
        if self.mode == "structured":
            headers = {"content-type": STRUCTURED, **self.transport}
            return Request(self.name, headers, json.dumps(self.envelope()).encode())
        headers = {
            f"ce-{name}": percent_encoded(value)
            for name, value in self.attributes.items()
            if name != "datacontenttype"
        }
        if "datacontenttype" in self.attributes:
            headers["content-type"] = self.attributes["datacontenttype"]
        return Request(self.name, {**headers, **self.transport}, self.data.encode())


def yaml_cases(files: tuple[str, ...] = VECTOR_FILES) -> list[YamlCase]:
    """Every case of the vector files, in each mode it names (both when none)."""
    cases = []
    for file in files:
        documents = yaml.load_all(
            (shared_testdata() / "cloudevents" / file).read_text(), yaml.BaseLoader
        )
        for index, document in enumerate(documents):
            attributes = dict(document["ContextAttributes"])
            attributes.update(attributes.pop("Extensions", {}))
            modes = [document["Mode"]] if "Mode" in document else ["binary", "structured"]
            for mode in modes:
                name = f"{file}[{index}]-{mode}"
                transport = dict(document.get("TransportExtensions", {}))
                cases.append(YamlCase(name, mode, attributes, document["Data"], transport))
    return cases


def spec_strings(case: YamlCase) -> YamlCase:
    """The case with its attributes as the spec's String type allows them.

    Two extension values of v1.yaml and v03.yaml end with a line break, a YAML
    block scalar's (``|``). Percent-encoded (``%0A``) a line break is a legal
    header value, but what it decodes to is not a legal attribute value: the
    String type of both 1.0 and 0.3 excludes control characters (U+0000-U+001F).
    Cumulo refuses those values
    (:func:`test_conformance_values_with_a_line_break_are_refused`) and checks
    the rest of each case as it is.
    """
    attributes = {name: value.rstrip("\n") for name, value in case.attributes.items()}
    return dataclasses.replace(case, attributes=attributes)


@dataclass(frozen=True)
class FeatureCase:
    """One example of an HTTP binding scenario: the raw request and what it must parse to."""

    name: str
    headers: dict[str, str]
    body: bytes
    attributes: dict[str, str]
    data: Any


def feature_cases() -> list[FeatureCase]:
    """The scenario outlines of http-protocol-binding.feature, one case per example row."""
    text = (shared_testdata() / "cloudevents" / "http-protocol-binding.feature").read_text()
    cases = []
    for scenario in text.split("Scenario Outline:")[1:]:
        title = scenario.splitlines()[0].strip()
        blocks = re.findall(r'"""\n(.*?)\n\s*"""', scenario, re.S)
        table = _table(scenario.split("Then the attributes are:")[1].split("And")[0])
        examples = _table(scenario.split("Examples:")[1])
        for row in examples[1:]:
            substitute = dict(zip(examples[0], row, strict=True))
            request, expected = (_fill(block, substitute) for block in blocks[:2])
            headers, body = _parse_request(request)
            attributes = {key: _fill(value, substitute) for key, value in table[1:]}
            cases.append(
                FeatureCase(f"{title}-{row[0]}", headers, body, attributes, json.loads(expected))
            )
    return cases


def _table(text: str) -> list[list[str]]:
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _fill(text: str, substitute: dict[str, str]) -> str:
    for key, value in substitute.items():
        text = text.replace(f"<{key}>", value)
    return text


def _parse_request(request: str) -> tuple[dict[str, str], bytes]:
    lines = [line.strip() for line in request.splitlines()]
    blank = lines.index("")
    headers = dict(line.split(": ", 1) for line in lines[1:blank])
    headers.pop("Content-Length", None)
    headers.pop("Host", None)
    return headers, "\n".join(lines[blank + 1 :]).encode()


def feature_request(case: FeatureCase) -> Request:
    return Request(case.name, {k.lower(): v for k, v in case.headers.items()}, case.body)


# --- SDK-rendered events -----------------------------------------------------------

AWKWARD = 'a "quoted" 100% café 🌎, with  spaces '
"""A value every rule of percent-encoding applies to."""
TIMES = (
    "2018-04-05T03:56:24Z",
    "2018-04-05T03:56:24.123456789Z",
    "2018-04-05T03:56:24+05:30",
    "1985-04-12T23:20:50.52-08:00",
    "2024-02-29t00:00:00.1z",
)


@dataclass(frozen=True)
class SdkEvent:
    """An event built with the SDK: a name, its attributes, its data."""

    name: str
    attributes: dict[str, Any]
    data: Any = None
    modes: tuple[str, ...] = ("binary", "structured")
    raw_headers: bool = field(default=False)  # binary mode as the SDK writes it, unencoded

    def event(self) -> CloudEvent:
        sdk_event = CloudEvent({"source": "/tests/sdk", "type": "t.sdk", **self.attributes}, None)
        sdk_event.data = self.data
        if "time" not in self.attributes:
            del sdk_event["time"]  # the SDK's default; these cases say when they have one
        return sdk_event


def _sdk_events() -> list[SdkEvent]:
    json_type = {"datacontenttype": "application/json"}
    text_type = {"datacontenttype": "text/plain; charset=utf-8"}
    octets = {"datacontenttype": "application/octet-stream"}
    v03 = {"specversion": "0.3"}
    return [
        SdkEvent("json", {**json_type, "id": "json"}, {"a": [1, 2.5, None, True], "é": "🌎"}),
        SdkEvent("json-untyped", {"id": "json-untyped"}, {"answer": 42}),
        SdkEvent("json-string", {**json_type, "id": "json-string"}, "just a string"),
        SdkEvent("text", {**text_type, "id": "text"}, "Hello, 🌎!\n"),
        SdkEvent("text-looks-like-json", {**text_type, "id": "text-number"}, "123"),
        SdkEvent("xml", {"datacontenttype": "application/xml", "id": "xml"}, "<a>1</a>"),
        SdkEvent("bytes", {**octets, "id": "bytes"}, bytes(range(256))),
        SdkEvent("bytes-untyped", {"id": "bytes-untyped"}, b"\x00\x01\xfe\xff"),
        SdkEvent("bytes-of-json", {**octets, "id": "bytes-of-json"}, b'{"k": "v"}'),
        SdkEvent("no-data", {"id": "no-data"}),
        SdkEvent("no-data-typed", {**json_type, "id": "no-data-typed"}),
        SdkEvent(
            "extensions",
            {"id": "ext", "subject": "s/1", "comexampleone": "value", "partitionkey": "k-1"},
            {"n": 1},
        ),
        SdkEvent(
            "extension-types", {"id": "ext-types", "count": 7, "flag": True}, None, ("structured",)
        ),
        SdkEvent(
            "percent-encoded",
            {"id": "pct 1%", "subject": AWKWARD, "comexamplefree": '"%" ü\u00a0'},
            "x",
        ),
        SdkEvent(
            "raw-utf8",
            {"id": "raw-utf8", "subject": "café 🌎", **text_type},
            "x",
            ("binary",),
            raw_headers=True,
        ),
        SdkEvent(
            "traced",
            {
                "id": "traced",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
            {"t": 1},
        ),
        *[
            SdkEvent(f"time-{index}", {"id": f"time-{index}", "time": time}, {"i": index})
            for index, time in enumerate(TIMES)
        ],
        SdkEvent(
            "v03",
            {**v03, "id": "v03", "schemaurl": "/schemas/thing", "subject": "s", "time": TIMES[2]},
            {"v": "0.3"},
        ),
        SdkEvent(
            "v03-base64",
            {**v03, **octets, "id": "v03-b64", "datacontentencoding": "base64"},
            base64.b64encode(b"\x00binary\xff").decode(),
            ("structured",),
        ),
        SdkEvent("v03-text", {**v03, **text_type, "id": "v03-text", "dataschema": "x"}, "hi"),
        SdkEvent("v03-bytes", {**v03, **octets, "id": "v03-bytes"}, b"\x01\x02"),
        SdkEvent(
            "v1-schema", {"id": "v1-schema", "dataschema": "https://x/s", "schemaurl": "y"}, 1
        ),
    ]


def _binary_request(name: str, case: SdkEvent) -> Request:
    headers, body = to_binary(case.event())
    if not case.raw_headers:
        headers = {
            key: percent_encoded(value) if key.startswith("ce-") else value
            for key, value in headers.items()
        }
    return Request(name, dict(headers), body or b"")


def sdk_cases() -> list[Request]:
    """SDK-rendered requests: each event in each of its modes, then batches of them."""
    events = _sdk_events()
    requests = []
    for case in events:
        for mode in case.modes:
            if mode == "binary":
                requests.append(_binary_request(f"sdk-{case.name}-binary", case))
            else:
                headers, body = to_structured(case.event())
                requests.append(Request(f"sdk-{case.name}-structured", dict(headers), body))
    v1 = [case for case in events if case.attributes.get("specversion") != "0.3"]
    v03 = [case for case in events if case.attributes.get("specversion") == "0.3"]
    requests += [_batch("sdk-batch-1.0", v1[:8]), _batch("sdk-batch-0.3", v03)]
    return requests


def _batch(name: str, cases: list[SdkEvent]) -> Request:
    items = [json.loads(to_structured(case.event())[1]) for case in cases]
    for item in items:
        item["id"] += "-in-batch"
    return Request(name, {"content-type": BATCH}, json.dumps(items).encode())


# --- the oracle ----------------------------------------------------------------------


def sdk_reading(request: Request) -> list[CloudEvent]:
    """What functions-framework gives its function for ``request``: the SDK's ``from_http``.

    Two differences are the HTTP binding's and Cumulo's own, not the SDK's:
    ``ce-`` values are percent-decoded, as the binding requires (the SDK
    leaves them encoded), and an event without a ``time`` has none (the SDK
    makes one up). A batch, which ``from_http`` does not read, is read as its
    events one by one.
    """
    headers = {name.lower(): value for name, value in request.headers.items()}
    if headers.get("content-type", "").startswith(BATCH):
        return [_structured_reading(item) for item in json.loads(request.body)]
    if "ce-specversion" not in headers:
        return [_structured_reading(json.loads(request.body))]
    decoded = {k: unquote(v) if k.startswith("ce-") else v for k, v in headers.items()}
    return [_without_invented_time(from_http(decoded, request.body), "ce-time" in headers)]


def _structured_reading(envelope: dict[str, Any]) -> CloudEvent:
    event = from_http({"content-type": STRUCTURED}, json.dumps(envelope))
    return _without_invented_time(event, "time" in envelope)


def _without_invented_time(event: CloudEvent, had_time: bool) -> CloudEvent:
    if not had_time:
        del event["time"]
    return event


def describe(event: Any) -> dict[str, Any]:
    """An SDK event as JSON: each attribute's Python type and value, the data's type and value.

    Bytes are shown as base64. The e2e project's function runs this same code
    (its source is copied into the project), so both sides describe alike.
    """
    import base64 as b64  # imported here: this function's source runs on its own

    attributes = {
        name: [type(value).__name__, value] for name, value in event.get_attributes().items()
    }
    data = event.get_data()
    shown = b64.b64encode(data).decode() if isinstance(data, bytes) else data
    return {"attributes": attributes, "data": [type(data).__name__, shown]}
