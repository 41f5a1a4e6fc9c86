"""The fan-out case's rotation service: the documented extension point
(``DATA_ENCRYPTION_SERVICE``), limited to the one table the case rotates.

Every encrypted field is rotated by default, and the benchmark database has several tables of
them; the workers the fan-out case starts name this class (see ``bench/settings.py``), so their
rotation walks ``RotationRecord`` alone and the rows per second are that table's.
"""

from __future__ import annotations

from django.db import models

from data_encryption.services import KeyRotationService


class RotationRecordOnly(KeyRotationService):
    def _load_model_configurations(self) -> list[tuple[type[models.Model], list[str]]]:
        from bench.benchapp.models import RotationRecord

        return [(RotationRecord, ["value"])]
