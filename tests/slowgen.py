"""A deliberately slow generator for interruption tests: ``--generator tests/slowgen.py:SlowLabelMap``.

It is ``labelmap`` with a pause after every batch (``ECHOBENCH_TEST_DELAY`` seconds, default 0.15), so a
test can kill a run mid-generation. Loaded by file path, as a user's quick-experiment adapter would be."""

import os
import time
from pathlib import Path

from generators.labelmap import LabelMapGenerator

PATH = Path(__file__)


class SlowLabelMap(LabelMapGenerator):
    """labelmap, slowed down so a test can kill it mid-generation."""

    uses_seed = True

    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        delay = float(os.environ.get("ECHOBENCH_TEST_DELAY", "0.15"))
        for batch in super().sample(n, seed=seed, batch_size=batch_size, conditions=conditions, start=start):
            time.sleep(delay)
            yield batch
