"""MLife: the machine-learning lifecycle around its badcases."""
