"""HTTP intake on a real uvicorn server on 127.0.0.1, feeding a real collector and InfluxDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from collector.config import Settings
from collector.errors import UserError
from collector.run.collector import Collector
from collector.sources.http import HttpSource
from collector.store.reader import Reader
from tests.helpers import fill, read_jsonl
from tests.run.conftest import running, scalar, wait_for, with_sources

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def intake(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Collector, str]]:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    run_settings = with_sources(settings, {"type": "http", "port": 0, "max_body_bytes": 64 * 1024, "max_records": 200})
    collector = Collector(run_settings)
    with running(collector):
        source = collector.sources[0]
        assert isinstance(source, HttpSource)
        yield collector, f"http://127.0.0.1:{source.port}"


def _fills(n: int, prefix: str = "h") -> list[dict[str, object]]:
    return [fill(fill_id=f"{prefix}{i}", ts=f"2024-03-01T14:30:{i % 60:02d}Z") for i in range(n)]


def test_token_is_required_and_checked(intake: tuple[Collector, str]) -> None:
    _, url = intake
    assert requests.post(f"{url}/v1/fills", json=_fills(1)).status_code == 401
    wrong = requests.post(f"{url}/v1/fills", json=_fills(1), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert requests.post(f"{url}/v1/fills", json=_fills(1), headers=AUTH).status_code == 200


def test_mixed_good_and_bad_records_get_per_record_answers(
    intake: tuple[Collector, str], reader: Reader, settings: Settings
) -> None:
    collector, url = intake
    records = [*_fills(3), {"ts": "yesterday"}, fill(fill_id="neg", qty=-1), "not an object"]
    answer = requests.post(f"{url}/v1/fills", json=records, headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] == 3 and body["errors"] is True
    assert [r["index"] for r in body["rejected"]] == [3, 4, 5]
    assert "qty" in body["rejected"][1]["error"]
    wait_for(lambda: collector.counters.fills_in == 3, what="the accepted fills")
    collector.checker.flush()
    letters = read_jsonl(settings.ingest.dead_letter)
    assert len(letters) == 3 and all(letter["source"].startswith("http:127.0.0.1#") for letter in letters)
    wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") == 3, what="fills in InfluxDB")


def test_ndjson_marks_and_duplicates(intake: tuple[Collector, str]) -> None:
    collector, url = intake
    body = "\n".join(json.dumps(f) for f in _fills(5)) + "\n{broken\n"
    answer = requests.post(f"{url}/v1/fills", data=body, headers=AUTH | {"Content-Type": "application/x-ndjson"}).json()
    assert answer["accepted"] == 5 and answer["rejected"][0]["index"] == 5
    assert "invalid JSON" in answer["rejected"][0]["error"]
    again = requests.post(f"{url}/v1/fills", json=_fills(5), headers=AUTH).json()
    assert again["accepted"] == 5  # valid; the engine drops them as duplicates
    marks = requests.post(
        f"{url}/v1/marks", json=[{"ts": "2024-03-01T14:31:00Z", "symbol": "ES", "price": 5101.0}], headers=AUTH
    ).json()
    assert marks == {"accepted": 1, "rejected": [], "errors": False}
    wait_for(lambda: collector.counters.fills_duplicate == 5 and collector.counters.marks_in == 1, what="engine")
    assert collector.counters.fills_in == 5
    assert collector.engine.marks["ES"] == 5101.0


def test_limits_give_413_and_malformed_bodies_400(intake: tuple[Collector, str]) -> None:
    collector, url = intake
    too_big = requests.post(f"{url}/v1/fills", data=b"[" + b" " * (70 * 1024) + b"]", headers=AUTH)
    assert too_big.status_code == 413
    too_many = requests.post(f"{url}/v1/fills", json=[fill(fill_id=str(i)) for i in range(201)], headers=AUTH)
    assert too_many.status_code == 413
    assert requests.post(f"{url}/v1/fills", data=b"[{]", headers=AUTH).status_code == 400
    assert requests.post(f"{url}/v1/fills", data=b"[1, 2", headers=AUTH).status_code == 400
    assert collector.counters.fills_in == 0


def test_health_readiness_and_openapi(intake: tuple[Collector, str]) -> None:
    _, url = intake
    assert requests.get(f"{url}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{url}/readyz").json() == {"status": "ready"}
    paths = requests.get(f"{url}/openapi.json").json()["paths"]
    assert {"/v1/fills", "/v1/marks", "/healthz", "/readyz"} <= set(paths)
    assert "application/x-ndjson" in paths["/v1/fills"]["post"]["requestBody"]["content"]


def test_concurrent_clients_all_land_exactly_once(intake: tuple[Collector, str], reader: Reader) -> None:
    collector, url = intake
    clients, requests_each, per_request = 12, 10, 50

    def client(c: int) -> int:
        session = requests.Session()
        accepted = 0
        for r in range(requests_each):
            batch = _fills(per_request, prefix=f"c{c}-r{r}-")
            answer = session.post(f"{url}/v1/fills", json=batch, headers=AUTH)
            assert answer.status_code == 200, answer.text
            accepted += answer.json()["accepted"]
        return accepted

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)))
    expected = clients * requests_each * per_request
    assert total == expected
    wait_for(lambda: collector.counters.fills_in == expected, what="all fills processed")
    count = "SELECT count(distinct(fill_id)) FROM fills"
    wait_for(lambda: scalar(reader, count) == expected, what="all fills in InfluxDB")


def test_full_queue_answers_503_with_retry_after(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    collector = Collector(with_sources(settings, {"type": "http", "port": 0}, run={"queue_batches": 1}))
    source = collector.sources[0]
    assert isinstance(source, HttpSource)
    # Started but with the engine not consuming: sources run, the queue fills and stays full.
    source.start(collector.outlet, collector.checker)
    try:
        url = f"http://127.0.0.1:{source.port}/v1/fills"
        assert requests.post(url, json=_fills(2), headers=AUTH).status_code == 200
        busy = requests.post(url, json=_fills(2, prefix="x"), headers=AUTH)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        ready = requests.get(url.replace("/v1/fills", "/readyz"))
        assert ready.status_code == 503
    finally:
        source.stop()


def test_refuses_to_start_without_a_token(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STRATMON_HTTP_TOKEN", raising=False)
    with pytest.raises(UserError, match="STRATMON_HTTP_TOKEN"):
        Collector(with_sources(settings, {"type": "http", "port": 0}))
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", "short")
    with pytest.raises(UserError, match="shorter than 16"):
        Collector(with_sources(settings, {"type": "http", "port": 0}))
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.delenv("STRATMON_HTTP_TOKEN")
    source = Collector(with_sources(settings, {"type": "http", "port": 0, "token_file": str(secret)})).sources[0]
    assert isinstance(source, HttpSource) and source.token == TOKEN
    open_intake = Collector(with_sources(settings, {"type": "http", "port": 0, "auth": "none"})).sources[0]
    assert isinstance(open_intake, HttpSource) and open_intake.token is None


def test_records_of_another_layout_through_a_map(
    settings: Settings, reader: Reader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    profile = tmp_path / "oms.yaml"
    profile.write_text(
        "columns: {ts: ExecTime, account: Acct, symbol: Sym, side: Side, qty: Qty, price: Px, fill_id: ExecID}\n"
        "timezone: Europe/London\nkeep: {Status: [FILLED]}\ndefaults: {strategy: manual}\n"
    )
    source = {"type": "http", "port": 0, "map": str(profile)}
    collector = Collector(with_sources(settings, source))
    oms = {"ExecTime": "2024-07-01 09:30:00.5", "Acct": "ACC1", "Sym": "VOD", "Qty": "100", "Px": "71.2"}
    records = [
        {**oms, "Side": "BOT", "ExecID": "x1", "Status": "FILLED"},
        {**oms, "Side": "SLD", "ExecID": "x2", "Status": "FILLED"},
        {**oms, "Side": "BOT", "ExecID": "x3", "Status": "PENDING"},  # not a fill: skipped
        {**oms, "Side": "HOLD", "ExecID": "x4", "Status": "FILLED"},
    ]
    with running(collector):
        source_port = collector.sources[0].port  # type: ignore[attr-defined]
        answer = requests.post(f"http://127.0.0.1:{source_port}/v1/fills", json=records, headers=AUTH)
        body = answer.json()
        assert body["accepted"] == 2 and [r["index"] for r in body["rejected"]] == [3]
        assert "side 'HOLD' is not one of buy" in body["rejected"][0]["error"]
        wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") == 2, what="the mapped fills")
    frame = reader.query("SELECT side, qty FROM fills")
    assert sorted(frame["side"]) == ["buy", "sell"]
    assert int(frame.index[0].value) // 1000 * 1000 == 1_719_822_600_500_000_000  # 09:30:00.5 BST = 08:30 UTC
