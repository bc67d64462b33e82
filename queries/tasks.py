from celery import shared_task

from queries.rollups import rollup_fold


# Every ROLLUP_FOLD_SECONDS (beat). A fold that finds another in progress returns at
# once, and an old queued fold is worthless once a newer one ran: hence the short expiry.
@shared_task(ignore_result=True, expires=5)
def rollups_fold() -> None:
    rollup_fold()
