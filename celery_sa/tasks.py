"""celery_sa's Celery tasks (found by ``app.autodiscover_tasks()``): the purge, for beat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import shared_task


@shared_task(name="celery_sa.purge")  # type: ignore[untyped-decorator]
def purge_results(
    older_than: str | None = None,
    statuses: Sequence[str] | str = (),
    names: Sequence[str] | str = (),
    groups: bool = True,
    undated: bool = False,
    batch_size: int | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """``manage.py celery_sa_purge`` as a task, with the same options, for celery beat::

        CELERY_BEAT_SCHEDULE = {
            # This key replaces Celery's own unbatched backend_cleanup.
            "celery.backend_cleanup": {
                "task": "celery_sa.purge",
                "schedule": crontab(hour=4, minute=0),
                "kwargs": {"older_than": "7d"},
            },
        }

    Returns what was deleted (or, with ``dry_run``, would be), as a dict.
    """
    # Imported here: task modules are imported before Django's models are ready.
    from celery_sa.housekeeping.purge import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_JOBS,
        PurgeOptions,
        count,
        purge,
    )

    options = PurgeOptions.parse(
        older_than,
        statuses=statuses,
        names=names,
        groups=groups,
        undated=undated,
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
        jobs=jobs or DEFAULT_JOBS,
    )
    return (count(options) if dry_run else purge(options)).as_dict()
