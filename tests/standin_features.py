"""A weight-free stand-in feature space for tests whose name does not start with ``random``: the substitute flag
must come from the extractor (and be stored), never be guessed from a name."""

from __future__ import annotations

import numpy as np

from harness.features.base import FeatureExtractor


class StandInExtractor(FeatureExtractor):
    name = "pixel-standin"
    description = "Grey-level histogram (16 bins): a stand-in space for tests"
    feature_space = "pixel-standin"
    substitute = True
    dim = 16

    def extract_batch(self, images):
        out = []
        for im in images:
            grey = np.asarray(im, dtype=np.float64).mean(axis=-1) if np.ndim(im) == 3 else np.asarray(im, np.float64)
            out.append(np.histogram(grey, bins=16, range=(0, 256))[0] / grey.size)
        return np.asarray(out)
