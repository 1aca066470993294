"""DAM — data analysis & management."""
