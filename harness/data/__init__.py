"""Data sources: where real (and phantom) images come from. See :mod:`harness.data.base`."""

from harness.data.base import DataSource, SampleBatch, open_data_spec

__all__ = ["DataSource", "SampleBatch", "open_data_spec"]
