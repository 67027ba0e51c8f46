"""`[monitoring.capture] compact_in_server`: two servers on one store compact its capture in the background,
one at a time (the lease), and every record stays once."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlopsctl.monitoring.captured import COMPACTED, load_captures
from mlopsctl.monitoring.compaction import LEASE_KEY
from mlopsctl.serving.app import ServeSettings, create_app
from mlopsctl.store import open_store
from tests.test_compaction import raw_keys, write_capture

pytestmark = pytest.mark.shared_data


def test_two_servers_compact_in_the_background_one_at_a_time(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    ids = write_capture(store, hours=6, writers=3, objects=2, rows=10)
    expected = Counter((r["request_id"], r["row"]) for r in load_captures(store, "m"))
    capture = {"compact_in_server": True, "compact_interval": 0.2, "compact_after": "1m", "keep_raw_hours": 0}
    settings = ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")], capture=capture)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert one.get("/ready").status_code == 200 and two.get("/ready").status_code == 200
        deadline = time.monotonic() + 60
        while raw_keys(store) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert raw_keys(store) == [] and len(store.list(COMPACTED)) == 6
    assert Counter((r["request_id"], r["row"]) for r in load_captures(store, "m")) == expected
    assert sum(expected.values()) == len(ids)
    lease = json.loads(store.get(LEASE_KEY))
    assert lease["expires"] == 0.0 and lease["owner"]  # given up by whichever server held it last


def test_a_server_without_the_switch_leaves_capture_alone(wine_store_copy: Path) -> None:
    store = open_store(str(wine_store_copy))
    write_capture(store, hours=1, writers=1, objects=1)
    settings = ServeSettings(store_uri=str(wine_store_copy), models=[("wine", "prod")], capture={})
    with TestClient(create_app(settings)) as c:
        assert c.get("/ready").status_code == 200
        time.sleep(0.5)
    assert len(raw_keys(store)) == 1 and store.list(COMPACTED) == [] and not store.exists(LEASE_KEY)
