"""A bounded fuzz of the intake API from its own OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from collector.config import Settings
from collector.run.collector import Collector
from collector.sources.http import HttpSource
from tests.run.conftest import running, with_sources

TOKEN = "fuzz-token-0123456789abcdef"
FIELDS = ["ts", "account", "strategy", "symbol", "side", "qty", "price", "fill_id", "fee", "order_ts", "multiplier"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
fill_like = st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=len(FIELDS))
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(fill_like, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.lists(st.one_of(fill_like.map(json.dumps), st.text(max_size=20)), max_size=5).map(
        lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")
    ),
)
auth_headers = st.sampled_from(
    [{}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer x"}, {"Authorization": "Basic abc"}]
)
content_types = st.sampled_from(["application/json", "application/x-ndjson", "text/plain", "", "multipart/form-data"])


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_no_input_makes_the_intake_answer_5xx(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    collector = Collector(with_sources(settings, {"type": "http", "port": 0, "max_body_bytes": 4096}))
    with running(collector):
        source = collector.sources[0]
        assert isinstance(source, HttpSource)
        base = f"http://127.0.0.1:{source.port}"
        schema = requests.get(f"{base}/openapi.json").json()
        operations = [(method.upper(), path) for path, item in schema["paths"].items() for method in item]
        assert ("POST", "/v1/fills") in operations
        session = requests.Session()
        seen: dict[int, int] = {}

        @hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            operation=st.sampled_from([*operations, ("POST", "/v1/unknown"), ("PUT", "/v1/fills")]),
            body=bodies,
            auth=auth_headers,
            content_type=content_types,
        )
        def check(operation: tuple[str, str], body: bytes, auth: dict[str, str], content_type: str) -> None:
            method, path = operation
            headers: dict[str, Any] = dict(auth)
            if content_type:
                headers["Content-Type"] = content_type
            answer = session.request(method, base + path, data=body, headers=headers, timeout=10)
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code < 500 or (answer.status_code == 503 and "Retry-After" in answer.headers), (
                method,
                path,
                body[:200],
                answer.status_code,
                answer.text[:300],
            )

        check()
    assert seen.get(200, 0) > 0 and seen.get(401, 0) > 0  # the fuzz reached both sides of the auth check
