"""Software-defined assets, generated from the source registry by ``build_*`` factories."""

RAW = "raw"
CLEANED = "cleaned"
FEATURES = "features"
QUARANTINE = "quarantine"
QUALITY = "quality"
IO_MANAGER_KEY = "lake_io_manager"
