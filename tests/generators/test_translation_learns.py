"""Evidence that CycleGAN and CUT learn: after the full ``tiny`` preset (320 iterations on a CPU), the
translated images are closer to the phantom echo images than the untranslated label maps are, in the
weight-free radiomics space. With the simulated phantom v2 the label-map rendering is itself much closer to the
echo images (its FD to real A4C statistics fell from 14.2 to 4.8), so the margin is small: measured CycleGAN
FD_radiomics 5.21–5.66 vs 5.82 for the label maps (ratio 0.90–0.97 across environments; it was 12.3 vs 21.9 with
phantom v1), so CycleGAN is only required to end below the label maps; CUT stays below 0.75."""

from __future__ import annotations

import numpy as np
import pytest

from generators.cut import CUTGenerator
from generators.cyclegan import CycleGANGenerator
from harness.data.phantom import PhantomSource, render_labelmap_image
from harness.features.radiomics import RadiomicsExtractor
from tasks.fid import frechet_distance, reference_stats


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = reference_stats(a), reference_stats(b)
    return frechet_distance(sa["mu"], sa["sigma"], sb["mu"], sb["sigma"])


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "max_ratio"), [(CycleGANGenerator, 1.0), (CUTGenerator, 0.75)])
def test_tiny_training_moves_towards_target(tmp_path, cls, max_ratio):
    train = PhantomSource.from_spec("train", size=64)[0]
    gen = cls()
    gen.fit(train, tmp_path, cls.preset("tiny"))
    target = next(PhantomSource.from_spec("test", size=64)[0].iter_batches("test", 128, batch_size=128)).images
    out = next(gen.sample(128, seed=1, batch_size=128))
    extractor = RadiomicsExtractor()
    f_target = extractor.extract_batch(list(target))
    translated = _fd(extractor.extract_batch(list(out.images)), f_target)
    baseline = _fd(extractor.extract_batch(list(render_labelmap_image(out.label_maps))), f_target)
    assert translated < max_ratio * baseline, (translated, baseline)
