"""A results DB seeded by real pipeline runs on phantom data, shared by the leaderboard tests (built once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

N = 20


def write_image_folder(folder: Path, n: int = N, size: int = 64) -> Path:
    """Images 'generated elsewhere': phantom-like gray noise fans, written as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size]
    fan = ((xx - size / 2) ** 2 + yy**2 < (0.9 * size) ** 2) & (np.abs(xx - size / 2) < yy * 0.9 + 2)
    for i in range(n):
        img = (rng.gamma(2.0, 30.0, (size, size)) * fan).clip(0, 255).astype(np.uint8)
        Image.fromarray(img, mode="L").save(folder / f"gen_{i:03d}.png")
    return folder


def import_example_study(url: str) -> None:
    from harness.store import Store
    from human_eval.db import import_study
    from human_eval.examples import make_example_study
    from human_eval.schema import study_from_frames

    ratings, participants = make_example_study(0)
    import_study(Store(url), study_from_frames(ratings, participants), "example", config={"synthetic": True})


def copy_with_matching_study(seeded_db: str, path: Path) -> str:
    """A copy of ``seeded_db`` plus a synthetic study rating its generators in the order of their FD_radiomics
    (real > labelmap > images: with the simulated phantom v2 the flat label maps are closer to the phantom's
    texture than the gray noise fans of ``write_image_folder``)."""
    import sqlite3

    import pandas as pd

    from harness.store import Store
    from human_eval.db import import_study
    from human_eval.schema import study_from_frames

    with sqlite3.connect(seeded_db.removeprefix("sqlite:///")) as src, sqlite3.connect(path) as dst:
        src.backup(dst)  # a file copy could miss pages still in the WAL
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(1)
    rows = [{"participant_id": f"P{p}", "image_id": f"{s}-{i}", "source": s,
             "rating": int(np.clip(round(rng.normal(mu, 0.7)), 1, 5))}
            for p in range(4) for s, mu in (("real", 4.5), ("labelmap", 3.0), ("images", 1.2)) for i in range(5)]
    import_study(Store(url), study_from_frames(pd.DataFrame(rows)), "zz-agreement", config={"synthetic": True})
    return url


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """real, labelmap and a folder of images (``images``) scored with FD/FD∞/KD in radiomics space, plus the
    synthetic example human study (~15 s)."""
    from harness.runner import RunRequest, run

    root = tmp_path_factory.mktemp("seeded")
    url = f"sqlite:///{root / 'results.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECHOBENCH_CACHE", str(root / "cache"))
        mp.setenv("ECHOBENCH_WEIGHTS", str(root / "no-weights"))
        common = dict(tasks=["fid"], n=N, db=url, home=root / "runs", device="cpu",
                      task_options={"fid": {"n_boot": 20, "kid_subsets": 10}})
        run(RunRequest(generator="real", features="radiomics", **common))
        run(RunRequest(generator="labelmap", features="radiomics", **common))
        folder = write_image_folder(root / "elsewhere")
        run(RunRequest(generator="images", features="radiomics", generator_options={"images": str(folder)}, **common))
        import_example_study(url)
    return url


@pytest.fixture(scope="session")
def seeded_db_cyclegan(seeded_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``seeded_db`` plus a CycleGAN trained for one epoch on 8 phantom images (tiny preset, ~1 min on 2 CPUs)."""
    from generators.cyclegan import TINY
    from harness import registry
    from harness.data.base import open_data_spec
    from harness.runner import RunRequest, run

    root = tmp_path_factory.mktemp("cyclegan")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECHOBENCH_CACHE", str(root / "cache"))
        source, _ = open_data_spec("phantom")
        checkpoint = registry.generators.get("cyclegan")(data=source).fit(
            source, root / "checkpoint", TINY.replace(n_epochs=1, n_train=8, save_every=1), device="cpu")
        run(RunRequest(generator="cyclegan", checkpoint=checkpoint, tasks=["fid"], features="radiomics", n=N,
                       db=seeded_db, home=root / "runs", device="cpu",
                       task_options={"fid": {"n_boot": 20, "kid_subsets": 10}}))
    return seeded_db
