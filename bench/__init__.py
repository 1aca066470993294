"""Side-by-side benchmarks of MLife against raw peers; they print ratios and never fail."""
