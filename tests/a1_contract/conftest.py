"""The default contract every contract test starts from."""

from __future__ import annotations

import pytest

from a1_contract import TaskContract, get_contract


@pytest.fixture(scope="module")
def base() -> TaskContract:
    return get_contract()
