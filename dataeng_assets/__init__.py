"""dataeng-assets: NYC flights 2013 through raw, cleaned and feature Delta tables, with Dagster."""

import warnings

from dagster import BetaWarning

# BackfillPolicy and allow_nonexistent_upstream_partitions are marked beta; they are the documented
# way to backfill a window in one run, and dagster is pinned, so the warnings are noise in every log.
warnings.filterwarnings("ignore", category=BetaWarning)
