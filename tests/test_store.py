"""The store contract, checked the same way for every implementation (local now, S3 next)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlopsctl.errors import Conflict, NotFound
from mlopsctl.store import Store, open_store
from mlopsctl.store.local import LocalStore


@pytest.fixture(params=["local"])
def store(request: Any, tmp_path: Path) -> Store:
    return open_store(str(tmp_path / "store"))


def test_put_get_round_trip(store: Store) -> None:
    etag = store.put("a/b.txt", b"hello")
    data, etag2 = store.get_with_etag("a/b.txt")
    assert data == b"hello" and etag == etag2
    assert store.get("a/b.txt") == b"hello"
    assert store.exists("a/b.txt") and not store.exists("a/c.txt")


def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="a/missing"):
        store.get("a/missing")
    assert store.get_json_or("a/missing.json", {"x": 1}) == {"x": 1}


def test_put_overwrites_and_changes_etag(store: Store) -> None:
    e1 = store.put("k", b"1")
    e2 = store.put("k", b"2")
    assert e1 != e2 and store.get("k") == b"2"


def test_put_if_absent_creates_once(store: Store) -> None:
    store.put_if_absent("once", b"first")
    with pytest.raises(Conflict):
        store.put_if_absent("once", b"second")
    assert store.get("once") == b"first"


def test_compare_and_swap(store: Store) -> None:
    etag = store.compare_and_swap("ptr", None, b"v1")
    with pytest.raises(Conflict):
        store.compare_and_swap("ptr", None, b"v1-again")  # must not exist
    with pytest.raises(Conflict):
        store.compare_and_swap("ptr", "stale-etag", b"v2")
    etag2 = store.compare_and_swap("ptr", etag, b"v2")
    assert store.get_with_etag("ptr") == (b"v2", etag2)


def test_list_and_list_dirs(store: Store) -> None:
    for key in ["models/a/versions/1/m", "models/a/versions/2/m", "models/b/x", "runs/r1/run.json"]:
        store.put(key, b".")
    assert store.list("models/") == ["models/a/versions/1/m", "models/a/versions/2/m", "models/b/x"]
    assert store.list("models/a/versions/") == ["models/a/versions/1/m", "models/a/versions/2/m"]
    assert store.list_dirs("models/") == ["a", "b"]
    assert store.list_dirs("models/a/versions/") == ["1", "2"]
    assert store.list("nothing/") == []
    assert len(store.list()) == 4


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_bad_keys_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.put(key, b"x")


def test_json_helpers(store: Store) -> None:
    store.put_json("x.json", {"b": 1, "a": [1, 2]})
    assert store.get_json("x.json") == {"a": [1, 2], "b": 1}


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    s = LocalStore(tmp_path)
    for i in range(20):
        s.put("k", str(i).encode())
    s.compare_and_swap("k", s.get_with_etag("k")[1], b"done")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def _increment(root: str, n: int) -> int:
    s = LocalStore(root)
    conflicts = 0
    done = 0
    while done < n:
        data, etag = s.get_with_etag("counter")
        try:
            s.compare_and_swap("counter", etag, str(int(data) + 1).encode())
            done += 1
        except Conflict:
            conflicts += 1
    return conflicts


def _claim(root: str, key: str) -> bool:
    try:
        LocalStore(root).put_if_absent(key, b"mine")
        return True
    except Conflict:
        return False


def test_cas_between_processes_never_loses_an_update(tmp_path: Path) -> None:
    s = LocalStore(tmp_path)
    s.put("counter", b"0")
    with mp.get_context("fork").Pool(4) as pool:
        pool.starmap(_increment, [(str(tmp_path), 50)] * 4)
    assert int(s.get("counter")) == 200


def test_put_if_absent_between_processes_has_one_winner(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(4) as pool:
        for i in range(10):
            wins = pool.starmap(_claim, [(str(tmp_path), f"claim-{i}")] * 4)
            assert sum(wins) == 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "cas_fresh", "cas_stale", "pia"]), st.binary(max_size=8)),
        max_size=20,
    )
)
def test_cas_behaves_like_a_register(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, bytes]]) -> None:
    """Against an in-memory model: CAS with a fresh etag wins, with a stale one loses, nothing is lost."""
    s = LocalStore(tmp_path_factory.mktemp("prop"))
    model: bytes | None = None
    stale = "0" * 64
    for op, data in ops:
        if op == "put":
            s.put("k", data)
            model = data
        elif op == "pia":
            if model is None:
                s.put_if_absent("k", data)
                model = data
            else:
                with pytest.raises(Conflict):
                    s.put_if_absent("k", data)
        elif op == "cas_fresh":
            etag = s.get_with_etag("k")[1] if model is not None else None
            s.compare_and_swap("k", etag, data)
            model = data
        else:
            if model is not None and s.get_with_etag("k")[1] == stale:
                continue
            with pytest.raises(Conflict):
                s.compare_and_swap("k", stale, data)
        assert (s.get("k") if s.exists("k") else None) == model
