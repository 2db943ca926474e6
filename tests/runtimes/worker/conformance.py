"""The shared CloudEvents conformance data (``../shared/testdata/cloudevents``), as test cases."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cumulo.events.cloudevent import is_json_media_type


def shared_testdata() -> Path:
    """``shared/testdata`` beside the repository (found by walking up from here)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no shared/testdata beside the repository")


@dataclass(frozen=True)
class YamlCase:
    """One conformance event: attributes (extensions included), the payload text, the mode."""

    name: str
    mode: str
    attributes: dict[str, str]
    data: str
    transport: dict[str, str]

    def expected_data(self) -> Any:
        """The data an Event decoded from this case must hold, per Cumulo's data rules."""
        content_type = self.attributes.get("datacontenttype")
        if is_json_media_type(content_type) or (self.mode == "structured" and not content_type):
            return json.loads(self.data)
        return self.data.encode()

    def envelope(self) -> dict[str, Any]:
        """The case in the JSON event format."""
        data = self.expected_data()
        if isinstance(data, bytes):
            return {**self.attributes, "data": self.data}
        return {**self.attributes, "data": data}


def yaml_cases() -> list[YamlCase]:
    """Every case in v1.yaml and v1_minimum.yaml, in each mode it names (both when none)."""
    cases = []
    for file in ("v1.yaml", "v1_minimum.yaml"):
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

    Two cases of the shared data end an extension value with a line break (a
    YAML block scalar's), which the spec's String excludes: Cumulo refuses those
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
