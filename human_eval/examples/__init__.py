"""Synthetic example study (clearly labelled: participant ids start with ``SYN-``).

:func:`make_example_study` builds 17 participants x 40 ratings (10 per source: real, cut, cyclegan, sd) whose
per-source rating counts were found by exhaustive search over count vectors on 1..5 so that the descriptives
match the paper's Table 3 to two decimals (mean, median, SD with ddof=1). The same search was also asked to
match the Mann-Whitney U values of Table 2 and the KS/Shapiro-Wilk statistics of Table 1; the chosen counts do
(see ``PAPER_COUNTS``). These are *not* the paper's data: only the published aggregates are matched; which
participant gave which rating, the images and the flags are simulated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PAPER_COUNTS", "make_example_study"]

#: Counts of ratings 1..5 per source (170 each), consistent with the paper's Tables 1-3 (see module docstring).
PAPER_COUNTS: dict[str, tuple[int, int, int, int, int]] = {
    "real": (47, 16, 29, 28, 50),
    "cut": (65, 23, 42, 13, 27),
    "cyclegan": (63, 17, 33, 19, 38),
    "sd": (12, 11, 30, 37, 80),
}
N_PARTICIPANTS = 17
PER_SOURCE = 10
POOL = 400
# base rate of each flag per source and how much a low rating raises it (logit slope per rating step)
_FLAG_BASE = {
    "walls_not_visible": {"real": 0.12, "cut": 0.30, "cyclegan": 0.28, "sd": 0.10},
    "unnatural_artifacts": {"real": 0.05, "cut": 0.35, "cyclegan": 0.30, "sd": 0.12},
    "possible_pathology": {"real": 0.10, "cut": 0.08, "cyclegan": 0.08, "sd": 0.12},
    "cropped_image": {"real": 0.08, "cut": 0.10, "cyclegan": 0.12, "sd": 0.06},
    "wall_destruction": {"real": 0.03, "cut": 0.20, "cyclegan": 0.18, "sd": 0.06},
}


def _participants(rng: np.random.Generator) -> pd.DataFrame:
    n = N_PARTICIPANTS
    exp = rng.gamma(2.0, size=n)  # right-skewed, as years of experience are
    exp = np.clip(np.round(10.32 + 7.26 * (exp - exp.mean()) / exp.std(ddof=1)), 1, 30)
    age = np.clip(np.round(25 + exp + np.abs(rng.normal(0, 4, size=n))), 25, 55)
    weekly = np.round(np.exp(rng.normal(np.log(25), 0.9, size=n))).clip(2, 300)
    specialty = np.array(["cardiologist"] * 8 + ["cardiac surgeon"] * 9)
    sex = np.array(["M"] * 10 + ["F"] * 7)
    return pd.DataFrame({
        "participant_id": [f"SYN-P{i + 1:02d}" for i in range(n)],
        "experience_years": exp.astype(int),
        "weekly_readings": weekly.astype(int),
        "specialty": rng.permutation(specialty),
        "age": age.astype(int),
        "sex": rng.permutation(sex),
        "language": rng.choice(["ru", "kk"], size=n, p=[0.8, 0.2]),
    })


def make_example_study(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the synthetic example study.

    Parameters
    ----------
    seed : int
        Seed of the :class:`numpy.random.Generator` that assigns ratings to participants and images.

    Returns
    -------
    ratings, participants : DataFrame
        In the import format of FORMATS.md (ratings: participant_id, image_id, source, rating, the five flags,
        position; participants: participant_id, experience_years, weekly_readings, specialty, age, sex,
        language). Per-source rating counts are exactly :data:`PAPER_COUNTS` for every seed.
    """
    rng = np.random.default_rng(seed)
    parts = _participants(rng)
    pids = parts["participant_id"].to_numpy()
    leniency = rng.normal(0, 0.6, size=N_PARTICIPANTS)  # participant effect
    rows = []
    for source, counts in PAPER_COUNTS.items():
        values = np.repeat(np.arange(1, 6), counts)  # sorted, 170 values
        # slots: each participant 10; lenient participants get the higher ratings (noisily)
        owner = np.repeat(np.arange(N_PARTICIPANTS), PER_SOURCE)
        key = leniency[owner] + rng.normal(0, 1.0, size=owner.size)
        owner = owner[np.argsort(key)]  # ascending key receives ascending ratings
        quality = rng.normal(size=POOL)  # latent image quality -> raters of one image tend to agree
        for p in range(N_PARTICIPANTS):
            mine = np.sort(values[owner == p])
            imgs = rng.choice(POOL, size=PER_SOURCE, replace=False)
            imgs = imgs[np.argsort(quality[imgs] + rng.normal(0, 0.7, size=PER_SOURCE))]
            for v, img in zip(mine, imgs):
                rows.append((pids[p], f"{source}_{img:04d}", source, int(v)))
    ratings = pd.DataFrame(rows, columns=["participant_id", "image_id", "source", "rating"])
    lowness = (3 - ratings["rating"].to_numpy()) * 0.5
    for flag, base in _FLAG_BASE.items():
        b = ratings["source"].map(base).to_numpy()
        logit = np.log(b / (1 - b)) + (lowness if flag != "possible_pathology" else 0.0)
        ratings[flag] = (rng.random(len(ratings)) < 1 / (1 + np.exp(-logit))).astype(int)
    # counterbalanced presentation order: a random permutation of the 40 images per participant
    ratings["position"] = 0
    for p in pids:
        idx = np.flatnonzero(ratings["participant_id"].to_numpy() == p)
        ratings.loc[idx, "position"] = rng.permutation(idx.size) + 1
    ratings = ratings.sort_values(["participant_id", "position"], kind="stable").reset_index(drop=True)
    return ratings, parts
