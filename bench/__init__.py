"""Benchmarks for lenet: each figure measured beside its baseline in the same run."""
