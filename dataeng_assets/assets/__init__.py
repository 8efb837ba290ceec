"""Software-defined assets, generated from the source registry by ``build_*`` factories."""

RAW = "raw"
CLEANED = "cleaned"
FEATURES = "features"
IO_MANAGER_KEY = "lake_io_manager"
