"""Partitions shared by the assets and, later, schedules and sensors."""

from dagster import BackfillPolicy, DailyPartitionsDefinition

LOCAL_TIMEZONE = "America/New_York"

# The data covers 2013; days are local NYC days, the way the airports and the files count them.
DAILY_2013 = DailyPartitionsDefinition(
    start_date="2013-01-01", end_date="2014-01-01", timezone=LOCAL_TIMEZONE
)

# One run takes a whole window (a month, a year): the assets read and write time windows.
SINGLE_RUN_BACKFILL = BackfillPolicy.single_run()
