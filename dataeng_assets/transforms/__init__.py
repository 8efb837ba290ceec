"""Pure transformations: DataFrames in, DataFrames out. No Dagster, no storage, no environment."""
