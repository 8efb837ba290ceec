"""The landing zone: files as upstream delivers them (replay) and how the raw layer reads them."""
