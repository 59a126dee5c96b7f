"""The registry: staged versions renamed into place, the atomic pointer, rollback, retention, racing readers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoretrain.models.errors import InvalidVersion, NothingToRollBack, RegistryError, VersionNotFound
from autoretrain.models.registry import Registry, parse_version
from tests.support.data import ROOT

SYMBOL, TF = "BTC/USDT", "1h"


def _add_version(registry: Registry, payload: bytes = b"model") -> str:
    with registry.stage(SYMBOL, TF) as staging:
        assert staging.path.name.startswith(".tmp-")
        (staging.path / "model.onnx").write_bytes(payload)
        return staging.commit({"onnx": {"sha256": hashlib.sha256(payload).hexdigest()}})


def test_commit_renames_a_complete_folder_into_place(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    first, second = _add_version(registry, b"one"), _add_version(registry, b"two")
    assert (first, second) == ("v0001", "v0002")
    folder = tmp_path / "models" / "BTC_USDT" / "1h" / "v0002"
    assert registry.version_dir(SYMBOL, TF, second) == folder
    assert (folder / "model.onnx").read_bytes() == b"two"
    assert json.loads((folder / "meta.json").read_text())["version"] == "v0002"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]
    assert [v.version for v in registry.versions(SYMBOL, TF)] == ["v0001", "v0002"]
    assert registry.promoted(SYMBOL, TF) is None


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    with pytest.raises(RuntimeError):
        with registry.stage(SYMBOL, TF) as staging:
            (staging.path / "model.onnx").write_bytes(b"half")
            raise RuntimeError("training crashed")
    series = registry.series_dir(SYMBOL, TF)
    assert [p.name for p in series.iterdir() if not p.name.startswith(".lock")] == []
    assert registry.versions(SYMBOL, TF) == []


def test_promote_and_rollback_walk_the_champion_history(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    v1, v2, v3 = (_add_version(registry, bytes([i])) for i in range(3))
    assert registry.promote(SYMBOL, TF, v1) is None
    assert registry.promote(SYMBOL, TF, v2) == v1
    assert registry.promote(SYMBOL, TF, v3) == v2
    assert registry.promote(SYMBOL, TF, v3) == v3  # promoting the champion again changes nothing
    assert registry.pointer(SYMBOL, TF)["history"] == [v2, v1]
    assert registry.rollback_target(SYMBOL, TF) == v2
    assert registry.rollback(SYMBOL, TF) == v2 and registry.promoted(SYMBOL, TF) == v2
    assert registry.rollback(SYMBOL, TF) == v1 and registry.promoted(SYMBOL, TF) == v1
    with pytest.raises(NothingToRollBack, match="no previous champion"):
        registry.rollback(SYMBOL, TF)
    assert [v.version for v in registry.versions(SYMBOL, TF) if v.promoted] == [v1]


def test_unknown_version_and_bad_names_are_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    _add_version(registry)
    with pytest.raises(VersionNotFound, match="no version v0009"):
        registry.promote(SYMBOL, TF, "v0009")
    assert parse_version("7") == parse_version("v7") == parse_version("v0007") == "v0007"
    for bad in ("latest", "v", "0", "-3"):
        with pytest.raises(InvalidVersion):
            parse_version(bad)


def test_retention_keeps_champion_previous_champion_and_newest_candidates(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    names = [_add_version(registry, bytes([i])) for i in range(8)]
    registry.promote(SYMBOL, TF, names[0])
    registry.promote(SYMBOL, TF, names[2])
    removed = registry.prune(SYMBOL, TF, keep_candidates=2)
    assert removed == [names[1], names[3], names[4], names[5]]
    assert [v.version for v in registry.versions(SYMBOL, TF)] == [names[0], names[2], names[6], names[7]]
    assert _add_version(registry) == "v0009"  # numbers are never reused
    registry.prune(SYMBOL, TF, keep_candidates=0)
    assert _add_version(registry) == "v0010"


def test_prune_clears_staging_of_dead_builders_only(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    mine = registry.stage(SYMBOL, TF)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = registry.series_dir(SYMBOL, TF) / f".tmp-{int(dead.stdout)}-abcd"
    orphan.mkdir()
    registry.prune(SYMBOL, TF, keep_candidates=5)
    assert mine.path.is_dir() and not orphan.exists()
    mine.discard()


def test_corrupt_pointer_is_reported_not_guessed(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    _add_version(registry)
    (registry.series_dir(SYMBOL, TF) / "promoted.json").write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        registry.promoted(SYMBOL, TF)


_READER = textwrap.dedent("""
    import hashlib, json, sys, time
    from autoretrain.models.registry import Registry
    registry = Registry(sys.argv[1])
    seen, errors, deadline = {}, [], time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        version = registry.promoted("BTC/USDT", "1h")
        folder = registry.version_dir("BTC/USDT", "1h", version)
        meta = json.loads((folder / "meta.json").read_text())
        digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
        if meta["version"] != version or meta["onnx"]["sha256"] != digest:
            errors.append(version)
        seen[version] = seen.get(version, 0) + 1
    print(json.dumps({"seen": seen, "errors": errors}))
""")


def test_readers_racing_promotions_see_old_or_new_never_a_mix(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    v1, v2 = _add_version(registry, b"a" * 50_000), _add_version(registry, b"b" * 70_000)
    registry.promote(SYMBOL, TF, v1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(tmp_path / "models"), "2.0"],
                                stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    promotions = 0
    while any(r.poll() is None for r in readers):
        registry.promote(SYMBOL, TF, v2 if promotions % 2 == 0 else v1)
        promotions += 1
    results = [json.loads(r.communicate()[0]) for r in readers]
    assert promotions > 50
    for result in results:
        assert result["errors"] == []
        assert set(result["seen"]) == {v1, v2}, result  # both versions were observed mid-race


def test_promote_with_expected_refuses_when_the_champion_moved(tmp_path) -> None:
    from autoretrain.models.errors import ChampionChanged
    from autoretrain.models.registry import Registry

    registry = Registry(tmp_path / "models")
    for _ in range(3):
        with registry.stage("BTC/USDT", "1h") as staging:
            (staging.path / "model.onnx").write_bytes(b"x")
            staging.commit({"note": "test"})
    registry.promote("BTC/USDT", "1h", "v0001", expected=None)
    with pytest.raises(ChampionChanged, match="changed from none to v0001"):
        registry.promote("BTC/USDT", "1h", "v0002", expected=None)
    assert registry.promoted("BTC/USDT", "1h") == "v0001"
    assert registry.promote("BTC/USDT", "1h", "v0003", expected="v0001") == "v0001"
