"""The store contract, checked the same way for every implementation.

Each contract test runs twice: against the local store in a temporary folder and against
the S3 store talking to a real S3 server over HTTP on 127.0.0.1 (moto in server mode,
started once per module, a fresh bucket per test). The races use real processes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlopsctl.errors import Conflict, MlopsError, NotFound
from mlopsctl.store import Store, open_store
from mlopsctl.store.local import LocalStore
from mlopsctl.store.s3 import S3Store, StoreError
from tests.s3server import BUSY, admin_client, new_bucket, s3_env

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(params=["local", "s3"])
def new_store(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Store]:
    """Makes empty stores of one kind: folders under tmp_path, or prefixes in a fresh bucket."""
    n = itertools.count()
    if request.param == "local":
        return lambda: open_store(str(tmp_path / f"store{next(n)}"))
    endpoint = request.getfixturevalue("s3_endpoint")
    s3_env(monkeypatch, tmp_path)
    bucket = new_bucket(endpoint)
    return lambda: S3Store(bucket, f"team/store{next(n)}", endpoint_url=endpoint)


@pytest.fixture
def store(new_store: Callable[[], Store]) -> Store:
    return new_store()


# -- the contract ---------------------------------------------------------------------------------


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
    with pytest.raises(Conflict):
        store.compare_and_swap("gone", etag2, b"v3")  # an etag for a key that does not exist


def test_list_and_list_dirs(store: Store) -> None:
    for key in ["models/a/versions/1/m", "models/a/versions/2/m", "models/b/x", "runs/r1/run.json"]:
        store.put(key, b".")
    assert store.list("models/") == ["models/a/versions/1/m", "models/a/versions/2/m", "models/b/x"]
    assert store.list("models/a/versions/") == ["models/a/versions/1/m", "models/a/versions/2/m"]
    assert store.list_dirs("models/") == ["a", "b"]
    assert store.list_dirs("models/a/versions/") == ["1", "2"]
    assert store.list("nothing/") == []
    assert len(store.list()) == 4


def test_list_pages_through_many_keys(store: Store) -> None:
    if isinstance(store, S3Store):
        store.page_size = 3  # S3 answers at most 1000 keys a page; 3 shows the paging on a few keys
    keys = [f"h/{i:02d}.json" for i in range(11)] + [f"h/d{i}/x" for i in range(5)]
    for key in keys[::-1]:
        store.put(key, b".")
    assert store.list("h/") == keys and store.list("h/d") == keys[11:]
    assert store.list_dirs("") == ["h"] and store.list_dirs("h/") == [f"d{i}" for i in range(5)]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_bad_keys_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.put(key, b"x")


def test_json_helpers(store: Store) -> None:
    store.put_json("x.json", {"b": 1, "a": [1, 2]})
    assert store.get_json("x.json") == {"a": [1, 2], "b": 1}


def test_delete(store: Store) -> None:
    store.put("scratch/x", b"1")
    store.delete("scratch/x")
    store.delete("scratch/x")  # deleting what is gone is fine
    assert not store.exists("scratch/x") and store.list("scratch/") == []


def test_writes_leave_nothing_else_behind(store: Store) -> None:
    for i in range(20):
        store.put("k", str(i).encode())
    store.compare_and_swap("k", store.get_with_etag("k")[1], b"done")
    assert store.list() == ["k"]
    if isinstance(store, LocalStore):
        assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp")] == []


# -- races between processes --------------------------------------------------------------------


_STORE: Any = None  # in each racing process: its own copy of the store (an S3 one makes its own client)
_START: Any = None  # a barrier: every racer starts its work at the same moment


def _racer(store: Store, barrier: Any) -> None:
    global _STORE, _START
    _STORE, _START = store, barrier


def _pool(store: Store, n: int) -> Any:
    """n processes, each holding the store."""
    ctx: Any
    if isinstance(store, LocalStore):
        ctx = mp.get_context("fork")
    else:
        # not fork: a child forked while moto's server threads run could inherit a held lock.
        # forkserver forks the racers from a clean single-threaded process that has this
        # module (pytest, hypothesis, boto3) imported already: quicker than spawning each.
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__, "boto3"])
    return ctx.Pool(n, initializer=_racer, initargs=(store, ctx.Barrier(n)))


def _store_when_all_are_ready() -> Store:
    # each of the n tasks blocks here until all n arrived, so each runs in its own process
    _START.wait(timeout=120)
    return _STORE


def _increment(n: int) -> int:
    s = _store_when_all_are_ready()
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


def _claim(key: str) -> bool:
    s = _store_when_all_are_ready()
    try:
        s.put_if_absent(key, b"mine")
        return True
    except Conflict:
        return False


def test_cas_between_processes_never_loses_an_update(store: Store) -> None:
    each = 50 if isinstance(store, LocalStore) else 10  # moto takes ~10 ms a request
    store.put("counter", b"0")
    with _pool(store, 4) as pool:
        conflicts = pool.map(_increment, [each] * 4)
    assert int(store.get("counter")) == 4 * each
    assert sum(conflicts) > 0  # the processes did collide: the swaps that lost were retried


def test_put_if_absent_between_processes_has_one_winner(store: Store) -> None:
    with _pool(store, 4) as pool:
        for i in range(10):
            wins = pool.map(_claim, [f"claim-{i}"] * 4)
            assert sum(wins) == 1


def test_cas_behaves_like_a_register(new_store: Callable[[], Store]) -> None:
    """Against an in-memory model: CAS with a fresh etag wins, with a stale one loses, nothing is lost."""
    s = new_store()
    keys = (f"k{i}" for i in itertools.count())
    stale = "0" * 64

    @settings(max_examples=40 if isinstance(s, LocalStore) else 12, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(["put", "cas_fresh", "cas_stale", "pia"]), st.binary(max_size=8)),
            max_size=20,
        )
    )
    def check(ops: list[tuple[str, bytes]]) -> None:
        key = next(keys)  # a fresh key per example
        model: bytes | None = None
        for op, data in ops:
            if op == "put":
                s.put(key, data)
                model = data
            elif op == "pia":
                if model is None:
                    s.put_if_absent(key, data)
                    model = data
                else:
                    with pytest.raises(Conflict):
                        s.put_if_absent(key, data)
            elif op == "cas_fresh":
                etag = s.get_with_etag(key)[1] if model is not None else None
                s.compare_and_swap(key, etag, data)
                model = data
            else:
                if model is not None and s.get_with_etag(key)[1] == stale:
                    continue
                with pytest.raises(Conflict):
                    s.compare_and_swap(key, stale, data)
            assert (s.get(key) if s.exists(key) else None) == model

    check()


# -- S3 only: the URI, the prefix, and errors that read as one line --------------------------------


def test_conditional_request_conflict_is_retried_or_a_conflict(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """S3's 409 (another conditional write to the key in flight): put-if-absent asks again, CAS loses."""
    s3_env(monkeypatch, tmp_path)
    bucket = new_bucket(s3_endpoint)
    s = S3Store(bucket, "p", endpoint_url=s3_endpoint)
    BUSY[f"/{bucket}/p/claim"] = 2
    etag = s.put_if_absent("claim", b"1")  # two 409s, then created
    assert BUSY[f"/{bucket}/p/claim"] == 0 and s.get_with_etag("claim") == (b"1", etag)
    BUSY[f"/{bucket}/p/claim"] = 1
    with pytest.raises(Conflict, match="changed since it was read"):
        s.compare_and_swap("claim", etag, b"2")
    assert s.compare_and_swap("claim", etag, b"2") and s.get("claim") == b"2"


def test_open_store_routes_s3_uris(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_env(monkeypatch, tmp_path)
    s = open_store("s3://team-bucket/mlops/prod/")
    assert isinstance(s, S3Store) and (s.bucket, s.prefix) == ("team-bucket", "mlops/prod")
    assert s.uri == "s3://team-bucket/mlops/prod" and s.endpoint_url is None
    bare = open_store("s3://team-bucket")
    assert isinstance(bare, S3Store) and bare.prefix == "" and bare.uri == "s3://team-bucket"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    assert S3Store("b-1", "p").endpoint_url == "http://generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:1")
    assert S3Store("b-1", "p").endpoint_url == "http://s3-only:1"
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", "http://minio:9000")
    assert S3Store("b-1", "p").endpoint_url == "http://minio:9000"
    assert S3Store("b-1", "p", endpoint_url="http://given:1").endpoint_url == "http://given:1"
    for bad in ("s3:///no-bucket", "s3://b-1/p?endpoint=x"):
        with pytest.raises(StoreError, match=rf"^store {re.escape(bad)}: expected s3://BUCKET/PREFIX$"):
            open_store(bad)


def test_s3_keys_live_under_the_prefix(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_env(monkeypatch, tmp_path, MLOPS_S3_ENDPOINT_URL=s3_endpoint)
    bucket = new_bucket(s3_endpoint)
    a, a2, root = (
        open_store(f"s3://{bucket}/team/a"),
        open_store(f"s3://{bucket}/team/a2"),
        open_store(f"s3://{bucket}"),
    )
    a.put("models/m/x.json", b"1")
    a2.put("models/n/y.json", b"2")
    admin = admin_client(s3_endpoint)
    admin.put_object(Bucket=bucket, Key="team/a/models/", Body=b"")  # a console's "folder"
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["team/a/models/", "team/a/models/m/x.json", "team/a2/models/n/y.json"]
    assert a.list() == ["models/m/x.json"] and a.list_dirs("models/") == ["m"]
    assert a2.list() == ["models/n/y.json"]
    assert root.list() == ["team/a/models/m/x.json", "team/a2/models/n/y.json"]
    assert root.get("team/a2/models/n/y.json") == b"2"


def test_a_missing_bucket_is_one_clear_error(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_env(monkeypatch, tmp_path)
    s = S3Store("no-such-bucket-here", "mlops", endpoint_url=s3_endpoint)
    expected = r"^store s3://no-such-bucket-here/mlops: bucket 'no-such-bucket-here' does not exist"
    for call in (lambda: s.get_json_or("x.json", {}), lambda: s.exists("x"), s.list, lambda: s.put("x", b"1")):
        with pytest.raises(StoreError, match=expected) as exc:
            call()  # not NotFound: get_json_or must not read a missing bucket as an empty store
        assert isinstance(exc.value, MlopsError) and "\n" not in str(exc.value)


def test_no_credentials_and_no_endpoint_are_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_env(monkeypatch, tmp_path, AWS_MAX_ATTEMPTS="1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        S3Store("some-bucket", endpoint_url="http://127.0.0.1:9").get("k")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(StoreError, match=r"get_object failed at http://127\.0\.0\.1:9: Could not connect"):
        S3Store("some-bucket", endpoint_url="http://127.0.0.1:9").get("k")


def test_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)
    with pytest.raises(StoreError, match=r"boto3 is not installed: pip install 'mlopsctl\[aws\]'"):
        open_store("s3://some-bucket/p").get("k")


def _documented_policy(bucket: str) -> str:
    (policy,) = re.findall(r"```json\n(.*?)```", (DOCS / "store.md").read_text(), flags=re.S)
    return policy.replace("my-bucket", bucket)


def test_the_documented_iam_policy_is_enough_and_denials_name_the_action(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With moto checking IAM: docs/store.md's policy runs every call; a read-only user is told what is missing."""
    import httpx

    s3_env(monkeypatch, tmp_path)
    bucket = new_bucket(s3_endpoint)
    iam = admin_client(s3_endpoint, "iam")
    read_only = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
        }
    )
    keys = {}
    for user, policy in [("mlops", _documented_policy(bucket)), ("reader", read_only)]:
        name = f"{user}-{bucket[-6:]}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="store", PolicyDocument=policy)
        keys[user] = iam.create_access_key(UserName=name)["AccessKey"]
    admin_client(s3_endpoint).put_object(Bucket=bucket, Key="mlops/seen.json", Body=b"{}")

    def as_user(user: str) -> S3Store:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[user]["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[user]["SecretAccessKey"])
        s = S3Store(bucket, "mlops", endpoint_url=s3_endpoint)
        s._client()  # made now, with this user's keys
        return s

    httpx.post(f"{s3_endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()  # from now on, IAM decides
    try:
        s, reader = as_user("mlops"), as_user("reader")
        etag = s.put_if_absent("models/m/claim.json", b"1")
        s.compare_and_swap("models/m/claim.json", etag, b"2")
        s.put("scratch", b"x")
        s.delete("scratch")
        assert s.list() == ["models/m/claim.json", "seen.json"] and s.list_dirs("models/") == ["m"]
        assert s.exists("seen.json") and not s.exists("nothing") and s.get_json_or("nothing", 7) == 7

        assert reader.get("seen.json") == b"{}"
        with pytest.raises(StoreError, match=rf"access denied: s3:PutObject on s3://{bucket}/mlops/x\.json"):
            reader.put("x.json", b"1")
        with pytest.raises(StoreError, match=r"access denied: s3:ListBucket"):
            reader.list("models/")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
        with pytest.raises(StoreError, match=r"credentials refused \(InvalidAccessKeyId\)"):
            S3Store(bucket, "mlops", endpoint_url=s3_endpoint).get("seen.json")
    finally:
        httpx.post(f"{s3_endpoint}/moto-api/reset-auth", content=b"inf").raise_for_status()
