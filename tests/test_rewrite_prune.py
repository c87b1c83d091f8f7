"""The pruning hull prepare() reports per table (tests/fixtures/rewrite/prune.yaml)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from timefusion.query.rewrite import PruneSpec, prepare
from timefusion.schema.tables import load_tables

SCHEMAS = load_tables()
CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "rewrite" / "prune.yaml").read_text())


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _date(value: Any) -> date | None:
    return value if isinstance(value, date) or value is None else date.fromisoformat(value)


def _param(value: Any) -> object:
    if isinstance(value, dict) and "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    return value


def spec(expected: dict[str, Any]) -> PruneSpec:
    projects = expected.get("projects")
    return PruneSpec(
        projects=None if projects is None else frozenset(projects),
        ts_min=_ts(expected.get("ts_min")),
        ts_max=_ts(expected.get("ts_max")),
        date_min=_date(expected.get("date_min")),
        date_max=_date(expected.get("date_max")),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["title"] for c in CASES])
def test_prune(case: dict[str, Any]) -> None:
    now = _ts(case.get("now", "2025-01-17T15:00:00"))
    params = [_param(p) for p in case["params"]] if "params" in case else None
    prepared = prepare(case["sql"], params, SCHEMAS, now)
    assert prepared.tables == {name: spec(e) for name, e in case["expect"].items()}


def test_spec_algebra() -> None:
    a = PruneSpec(frozenset({"a"}), _ts("2025-01-01"), _ts("2025-01-02"))
    b = PruneSpec(frozenset({"b"}), _ts("2025-01-05"), None)
    assert a.union(b) == PruneSpec(frozenset({"a", "b"}), _ts("2025-01-01"), None)
    assert a.intersect(b) == PruneSpec(frozenset(), _ts("2025-01-05"), _ts("2025-01-02"))
    assert PruneSpec().with_implied_dates() == PruneSpec()
    assert a.with_implied_dates().date_min == date(2025, 1, 1)
