"""The SDK's ssh entry has one name: "connections" are the users present."""

from __future__ import annotations

import warnings

import pytest

import devenv
from devenv.models.ssh_entry import SshEntry


def test_the_ssh_entry_is_called_so_and_its_old_name_warns() -> None:
    assert devenv.SshEntry is SshEntry
    with pytest.warns(DeprecationWarning, match="devenv.SshEntry"):
        assert devenv.Connection is SshEntry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert devenv.SshEntry is SshEntry  # the new name is quiet
