"""BAM — badcase analysis & management."""
