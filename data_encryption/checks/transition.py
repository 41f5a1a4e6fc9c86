"""The check that a column's transition is over (W005): it is still listed in
``DATA_ENCRYPTION_LEGACY_COLUMNS``, but the last census that counted it found no legacy value."""

from __future__ import annotations

from typing import Any

from django.core.checks import Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

# The runs whose censuses are searched for each column's latest count, newest first.
RECENT_RUNS = 50


@register(Tags.database, Tags.security)
def check_transition_over(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W005: a column in transition whose last census (by a rotation or a conversion) found no
    legacy value left; while listed, a plaintext value written behind the application's back is
    still read as if it were the column's own."""
    from django.db import DatabaseError

    from ..keys import key_database
    from ..models import RotationRun, RunStatus
    from ..rotation.conversion import columns_in_transition
    from ..rotation.conversion_report import legacy_count

    using = key_database()
    if not databases or using not in databases:
        return []
    try:
        columns = columns_in_transition()
    except ImproperlyConfigured:  # the setting's own errors are reported where it is read
        return []
    if not columns:
        return []
    try:
        censuses = list(
            RotationRun.objects.using(using)
            .filter(status__in=[RunStatus.COMPLETED, RunStatus.FAILED], phase="done")
            .order_by("-finished_at", "-pk")
            .values_list("census", flat=True)[:RECENT_RUNS]
        )
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    warnings = []
    for column in columns:
        model, _, name = column.rpartition(".")
        last = next(
            (census[model][name] for census in censuses if name in census.get(model, {})), None
        )
        if last is not None and not legacy_count(last):
            warnings.append(
                Warning(
                    f"{column} is in DATA_ENCRYPTION_LEGACY_COLUMNS, but the last census found "
                    "no legacy value left in it: the transition is over; remove the entry.",
                    hint=(
                        "Remove it from DATA_ENCRYPTION_LEGACY_COLUMNS and deploy: the column "
                        "then reads encrypted values only."
                    ),
                    id="data_encryption.W005",
                )
            )
    return warnings
