"""MSM — model serving & management."""
