"""The server key: one key however many processes create it at once; sealed values open
only with it."""

from __future__ import annotations

import concurrent.futures
import stat
from pathlib import Path

import pytest

from userdesk.security.sealing import Sealer, SealingError, key_from_file


def test_processes_starting_together_agree_on_one_private_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret.key"
    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(key_from_file, [path] * 16))
    assert len(keys) == 1 and len(keys.pop()) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no drafts left


def test_sealed_values_open_only_with_their_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    created: list[str] = []

    def lazily() -> str:
        created.append("read")
        return key_from_file(path)

    sealer = Sealer(lazily)
    assert not path.exists() and not created  # nothing is written until something is sealed
    sealed = sealer.seal("JBSWY3DPEHPK3PXP")
    assert sealed.startswith("sealed:v1:") and "JBSWY3DPEHPK3PXP" not in sealed
    assert sealer.open(sealed) == "JBSWY3DPEHPK3PXP"
    assert Sealer(key_from_file(path)).open(sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealingError):
        Sealer("another key").open(sealed)
    with pytest.raises(SealingError):
        sealer.open("JBSWY3DPEHPK3PXP")
