"""Measurement: crypto and link benchmarks, flash wear and the power-loss campaign driver."""
