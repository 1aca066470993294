"""MTT — model training & testing."""
