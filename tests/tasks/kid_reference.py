"""torchmetrics' KID on features, with its random subset draws replayed so EchoBench can use the same subsets."""

from __future__ import annotations

import warnings

import numpy as np


def torchmetrics_kid(real: np.ndarray, fake: np.ndarray, subsets: int, m: int, seed: int):
    """``(mean, std, fake_idx, real_idx)``: torchmetrics' KID (identity features) and the subset indices it drew
    (per subset ``randperm(real)`` then ``randperm(fake)``, replayed from ``torch.manual_seed(seed)``)."""
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    torch.manual_seed(seed)
    ridx, fidx = [], []
    for _ in range(subsets):
        ridx.append(torch.randperm(len(real))[:m].numpy())
        fidx.append(torch.randperm(len(fake))[:m].numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=subsets, subset_size=m)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    torch.manual_seed(seed)
    mean, std = (float(v) for v in metric.compute())
    return mean, std, np.stack(fidx), np.stack(ridx)
