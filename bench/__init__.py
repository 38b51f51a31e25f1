"""Reproducible benchmarks. Each prints ratios against baselines measured in the same run."""
