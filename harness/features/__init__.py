"""Feature extractors (one module each) and the feature cache. See :mod:`harness.features.base`."""
