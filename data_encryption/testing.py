"""Helpers for the test suites of projects that use encrypted fields: a key ring loaded before
each test, so ``assertNumQueries`` around an encrypted write counts the write alone, whichever
test ran first. See docs/testing.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .keys import reset_key_ring, warm_up_key_ring

if TYPE_CHECKING:
    from django.test import TransactionTestCase as _TestCaseBase
else:
    _TestCaseBase = object

__all__ = ["KeyRingWarmedUp"]


class KeyRingWarmedUp(_TestCaseBase):
    """Test-case mixin: every test starts with this process's key ring freshly loaded from the
    test database. Put it before the test case class::

        class CustomerTests(KeyRingWarmedUp, TestCase): ...
    """

    @classmethod
    def setUpClass(cls) -> None:
        # Before TestCase opens its class-wide transaction: a first data key made here is
        # committed, and only a ring whose keys are committed is cached.
        warm_up_key_ring()
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        # Reloaded, not trusted: the cached ring may hold a key that an earlier test rolled back
        # or a TransactionTestCase's flush removed.
        reset_key_ring()
        warm_up_key_ring()


try:
    import pytest
except ImportError:  # pytest is optional: the mixin above serves Django's test runner
    pass
else:

    @pytest.fixture
    def warm_key_ring(db: Any) -> Iterator[None]:
        """pytest-django fixture: the key ring freshly loaded for this test (after ``db``).
        Name it in ``conftest.py``: ``from data_encryption.testing import warm_key_ring``."""
        reset_key_ring()
        warm_up_key_ring()
        yield
        reset_key_ring()

    __all__ += ["warm_key_ring"]
