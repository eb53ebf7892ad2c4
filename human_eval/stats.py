"""Statistics of a human-evaluation study, pingouin style.

Every function takes a long-format DataFrame (one row per rating) and column names, and returns a tidy
DataFrame whose columns are documented in its docstring. p-values are always in columns named ``p`` (or
``p_<variant>``: ``p_exact``, ``p_perm``, ``p_holm`` ...), whatever the wrapped library calls them.
A source with fewer than 2 ratings (or participants) gives a row whose ``note`` says
``"insufficient data (n=1)"`` and NaN statistics instead of an exception.

The paper's analysis (descriptives, normality, Mann-Whitney U vs real) is reproduced exactly where the
published numbers allow (PAPER.md "Notes on reproducing"); the analysis the within-subjects design calls for
(Friedman + Wilcoxon/Holm on participant means, ordinal model with participant-clustered errors, clustered
bootstrap, agreement, TOST) follows METRICS.md.

References
----------
Mann & Whitney (1947); Friedman (1937); Kendall & Babington Smith (1939); Holm (1979); McCullagh (1980)
for the cumulative-logit model; Shrout & Fleiss (1979) for ICC; Krippendorff (2011) for alpha;
Wilson (1927) for binomial CIs; Schuirmann (1987) for TOST.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.seeding import named_rng

log = logging.getLogger(__name__)

__all__ = [
    "EXACT_MAX_COST",
    "mwu_exact_p",
    "ORDINAL_MAX_N",
    "agreement",
    "artifact_flags",
    "cluster_bootstrap",
    "descriptives",
    "friedman",
    "mann_whitney_vs_reference",
    "normality",
    "ordinal_model",
    "participant_means",
    "source_order",
    "tost_vs_reference",
    "wilcoxon_posthoc",
]

#: Above this min(n1,n2)*n1*n2 the exact (no-ties) MWU p is skipped; the note says so.
EXACT_MAX_COST = 300_000_000
#: Above this many ratings the ordinal model is skipped (the clustered bootstrap still runs).
ORDINAL_MAX_N = 200_000


def _rated_rows_only(fn):
    """Leave out rows whose rating (``dv``) is missing, with a warning, before ``fn`` sees the data: every
    statistic then works on the same ratings (the CSV import already refuses empty ratings)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        df, dv = bound.arguments["df"], bound.arguments.get("dv", "rating")
        if isinstance(df, pd.DataFrame) and dv in df.columns and df[dv].isna().any():
            log.warning("%s: %d row(s) without a %s left out", fn.__name__, int(df[dv].isna().sum()), dv)
            bound.arguments["df"] = df[df[dv].notna()]
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def _insufficient(n: int) -> str:
    return f"insufficient data (n={n})"


def source_order(df: pd.DataFrame, between: str = "source", reference: str | None = "real") -> list[str]:
    """Sources in report order: the reference first, then the others alphabetically."""
    names = sorted(pd.unique(df[between]).tolist())
    if reference in names:
        names.remove(reference)
        names.insert(0, reference)
    return names


def _groups(df, dv, between, reference="real"):
    vals = {k: g.to_numpy(dtype=float) for k, g in df.groupby(between, sort=False)[dv]}
    return [(s, vals[s]) for s in source_order(df, between, reference)]


# ----------------------------------------------------------------------------------- paper: Tables 1-3
@_rated_rows_only
def descriptives(df: pd.DataFrame, dv: str = "rating", between: str = "source") -> pd.DataFrame:
    """Per-source descriptives (paper Table 3).

    Returns
    -------
    DataFrame
        ``source, n, mean, median, sd`` (sample SD, ddof=1), ``note``.
    """
    rows = []
    for s, x in _groups(df, dv, between):
        n = x.size
        rows.append({between: s, "n": n, "mean": x.mean() if n else np.nan, "median": np.median(x) if n else np.nan,
                     "sd": x.std(ddof=1) if n >= 2 else np.nan, "note": "" if n >= 2 else _insufficient(n)})
    return pd.DataFrame(rows)


@_rated_rows_only
def normality(df: pd.DataFrame, dv: str = "rating", between: str = "source") -> pd.DataFrame:
    """Normality tests per source (paper Table 1).

    Kolmogorov-Smirnov against a normal with the sample mean and SD (``scipy.stats.kstest``; its p assumes
    known parameters and is therefore too large), Lilliefors (``statsmodels``; same statistic, corrected p),
    Shapiro-Wilk (``scipy.stats.shapiro``) and Anderson-Darling (``scipy.stats.anderson``; p interpolated from
    tables and bounded to 0.01..0.15, ``crit_5pct`` is the 5% critical value).

    Returns
    -------
    DataFrame
        ``source, test, statistic, statistic_adj, p, crit_5pct, n, note`` (one row per source x test);
        ``statistic_adj`` differs from ``statistic`` only for Anderson–Darling (the small-sample adjusted A*²,
        which is what the paper's Table 1 reports).
    """
    from statsmodels.stats.diagnostic import lilliefors

    rows = []
    for s, x in _groups(df, dv, between):
        n = x.size
        if n < 4 or np.ptp(x) == 0:  # Lilliefors (statsmodels) needs ≥ 4 observations
            why = _insufficient(n) if n < 4 else "all ratings equal: normality tests undefined"
            for t in ("kolmogorov_smirnov", "lilliefors", "shapiro_wilk", "anderson_darling"):
                rows.append({between: s, "test": t, "statistic": np.nan, "statistic_adj": np.nan, "p": np.nan,
                             "crit_5pct": np.nan, "n": n, "note": why})
            continue
        m, sd = x.mean(), x.std(ddof=1)
        ks = sps.kstest(x, "norm", args=(m, sd))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lf_stat, lf_p = lilliefors(x, dist="norm", pvalmethod="approx" if n > 900 else "table")
            sw = sps.shapiro(x)
            ad = sps.anderson(x, "norm", method="interpolate")
        crit = 0.787 / (1.0 + 4.0 / n - 25.0 / n**2)  # scipy's 5% critical value for the normal case
        rows += [
            {between: s, "test": "kolmogorov_smirnov", "statistic": ks.statistic, "p": ks.pvalue, "crit_5pct": np.nan,
             "n": n, "note": "mean/SD estimated from the sample; p assumes them known (too large)"},
            {between: s, "test": "lilliefors", "statistic": lf_stat, "p": lf_p, "crit_5pct": np.nan, "n": n,
             "note": "p from tables, bounded to 0.001..0.2" if n <= 900 else "p approximate"},
            {between: s, "test": "shapiro_wilk", "statistic": sw.statistic, "p": sw.pvalue, "crit_5pct": np.nan, "n": n,
             "note": "" if n <= 5000 else "n > 5000: scipy's p may be inaccurate"},
            {between: s, "test": "anderson_darling", "statistic": ad.statistic,
             "statistic_adj": ad.statistic * (1.0 + 0.75 / n + 2.25 / n**2), "p": ad.pvalue, "crit_5pct": crit,
             "n": n, "note": "p interpolated from tables, bounded to 0.01..0.15; statistic_adj = A²(1 + 0.75/n + "
                             "2.25/n²), the small-sample form SPSS/D'Agostino & Stephens report (the paper's Table 1)"},
        ]
        for row in rows[-4:-1]:
            row["statistic_adj"] = row["statistic"]
    return pd.DataFrame(rows)


def mwu_exact_p(u1: float, n1: int, n2: int) -> float:
    """Two-sided exact p of the Mann-Whitney U *ignoring ties*, as ``scipy.stats.mannwhitneyu(method="exact")``.

    Same definition as scipy (U = max(U1, U2) truncated to an integer, p = 2 P(U >= U), clipped to 1), but
    computed in O(min(n1, n2) * k) with k = n1*n2 - U: by symmetry P(U >= u) = P(U <= k), and the counts
    of U = 0..k are the low coefficients of the Gaussian binomial [n1+n2 choose n1]_q =
    prod_i (1 - q^(n2+i)) / (1 - q^i), built by a shift-subtract and a strided cumulative sum per factor.
    Only coefficients <= k are formed; they increase with the degree, so the float error stays relative to
    the tail itself (~1e-12), and a running log-scale prevents overflow.
    """
    from scipy.special import gammaln

    a, b = sorted((int(n1), int(n2)))
    m = a * b
    u = int(max(u1, m - u1))
    k = m - u
    f = np.zeros(k + 1)
    f[0] = 1.0
    log_scale = 0.0
    for i in range(1, a + 1):
        c = b + i
        if c <= k:
            f[c:] -= f[: k + 1 - c].copy()  # times (1 - q^c)
        pad = (-(k + 1)) % i
        g = np.concatenate([f, np.zeros(pad)]).reshape(-1, i)
        f = np.cumsum(g, axis=0).ravel()[: k + 1]  # divided by (1 - q^i)
        top = f.max()
        f /= top
        log_scale += np.log(top)
    log_tail = np.log(np.clip(f, 0.0, None).sum()) + log_scale
    log_total = gammaln(a + b + 1) - gammaln(a + 1) - gammaln(b + 1)
    return float(min(1.0, 2.0 * np.exp(log_tail - log_total)))


def _perm_p(pooled: np.ndarray, ranks: np.ndarray, n1: int, n_perm: int, rng: np.random.Generator) -> float:
    """Tie-aware two-sided Monte-Carlo permutation p of the midrank sum of the first sample.

    Relabelling the pooled ratings at random only changes how many of each distinct value land in sample 1,
    which is multivariate hypergeometric; the rank sum is then those counts times the values' midranks. This
    is the same null distribution as permuting labels (``scipy.stats.permutation_test``), drawn in
    O(n_perm * distinct values). p = (1 + #{|T*| >= |T|}) / (n_perm + 1) with T = R1 - n1 (N + 1) / 2.
    """
    vals, first, counts = np.unique(pooled, return_index=True, return_counts=True)
    mid = ranks[first]
    N = pooled.size
    centre = n1 * (N + 1) / 2.0
    obs = abs(ranks[:n1].sum() - centre)
    hits = 0
    step = max(1, int(2_000_000 // max(1, vals.size)))
    for start in range(0, n_perm, step):
        b = min(step, n_perm - start)
        draw = rng.multivariate_hypergeometric(counts, n1, size=b, method="marginals")
        hits += int(np.count_nonzero(np.abs(draw @ mid - centre) >= obs * (1 - 1e-12)))
    return (hits + 1) / (n_perm + 1)


def _mwu_one(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_perm: int) -> dict:
    """U, tie-corrected Z, asymptotic/exact/permutation p and r for x vs y (y = reference)."""
    n1, n2 = x.size, y.size
    N = n1 + n2
    pooled = np.concatenate([x, y])
    ranks = sps.rankdata(pooled)
    r1 = ranks[:n1].sum()
    u1 = r1 - n1 * (n1 + 1) / 2.0  # scipy's U for the first sample
    u = min(u1, n1 * n2 - u1)
    _, t = np.unique(pooled, return_counts=True)
    t = t.astype(float)
    var = n1 * n2 / 12.0 * ((N + 1) - (t**3 - t).sum() / (N * (N - 1)))
    out = {"n1": n1, "n2": n2, "U": u, "U1": u1, "mean_rank": ranks[:n1].mean(), "mean_rank_ref": ranks[n1:].mean()}
    notes = []
    if var <= 0:
        out.update(Z=np.nan, p=np.nan, p_exact=np.nan, p_perm=np.nan, r=np.nan)
        out["note"] = "all ratings equal: U test undefined"
        return out
    z = (u - n1 * n2 / 2.0) / np.sqrt(var)  # <= 0 by construction (smaller U), as in SPSS output
    out["Z"] = z
    out["p"] = 2 * sps.norm.sf(abs(z))
    out["r"] = abs(z) / np.sqrt(N)
    cost = min(n1, n2) * n1 * n2
    if cost <= EXACT_MAX_COST:
        out["p_exact"] = mwu_exact_p(u1, n1, n2)
    else:
        out["p_exact"] = np.nan
        notes.append(f"exact p skipped (n_min*n1*n2 = {cost:,} > {EXACT_MAX_COST:,})")
    if n_perm > 0:
        out["p_perm"] = _perm_p(pooled, ranks, n1, n_perm, rng)
    else:
        out["p_perm"] = np.nan
    out["note"] = "; ".join(n for n in notes if n)
    return out


@_rated_rows_only
def mann_whitney_vs_reference(df: pd.DataFrame, dv: str = "rating", between: str = "source", reference: str = "real",
                              *, n_perm: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Mann-Whitney U of each source vs the reference (paper Table 2), treating ratings as independent.

    Returns
    -------
    DataFrame
        ``source, reference, n1, n2, U`` (the smaller of U1, U2, as the paper), ``U1`` (scipy's U for the
        source), ``mean_rank, mean_rank_ref, Z`` (tie-corrected normal approximation, no continuity
        correction; negative by construction), ``p`` (asymptotic, two-sided, from Z), ``p_exact`` (exact null
        distribution of U *ignoring ties*, ``scipy.stats.mannwhitneyu(method="exact")``: what the paper's
        "exact p" column matches), ``p_perm`` (tie-aware Monte-Carlo permutation test of the midrank sum,
        ``n_perm`` resamples, seeded; :func:`_perm_p`), ``r`` = abs(Z)/sqrt(n1+n2), ``higher`` (which sample has the larger mean
        rank), ``note``.

    Notes
    -----
    The test assumes independent ratings; in a within-subjects study they are not (see :func:`friedman`).
    """
    groups = dict(_groups(df, dv, between, reference))
    if reference not in groups:
        return pd.DataFrame([{between: reference, "reference": reference, "note": f"reference {reference!r} absent"}])
    y = groups[reference]
    rows = []
    for s, x in groups.items():
        if s == reference:
            continue
        if x.size < 2 or y.size < 2:
            rows.append({between: s, "reference": reference, "n1": x.size, "n2": y.size,
                         "note": _insufficient(min(x.size, y.size))})
            continue
        res = _mwu_one(x, y, named_rng(seed, s), n_perm)  # own stream: other sources do not change this p
        res["higher"] = s if res["mean_rank"] > res["mean_rank_ref"] else reference
        rows.append({between: s, "reference": reference, **res})
    cols = [between, "reference", "n1", "n2", "U", "U1", "mean_rank", "mean_rank_ref", "Z", "p", "p_exact", "p_perm",
            "r", "higher", "note"]
    return pd.DataFrame(rows).reindex(columns=cols)


# ----------------------------------------------------------------------------------- participant level
@_rated_rows_only
def participant_means(df: pd.DataFrame, participants: pd.DataFrame | None = None, dv: str = "rating",
                      between: str = "source", subject: str = "participant_id") -> pd.DataFrame:
    """Each participant's mean rating per source with a 95% t-interval (paper Figure 5 data).

    Returns
    -------
    DataFrame
        ``participant_id, source, n, mean, sd, ci_low, ci_high`` plus ``experience_years`` and
        ``weekly_readings`` when ``participants`` has them; ``note`` for cells with n < 2.
    """
    g = df.groupby([subject, between], sort=True)[dv]
    out = g.agg(n="size", mean="mean", sd="std").reset_index()
    half = sps.t.ppf(0.975, np.maximum(out["n"] - 1, 1)) * out["sd"] / np.sqrt(out["n"])
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out["note"] = np.where(out["n"] < 2, out["n"].map(_insufficient), "")
    if participants is not None:
        keep = [c for c in ("experience_years", "weekly_readings") if c in participants.columns]
        out = out.merge(participants[[subject, *keep]], on=subject, how="left")
    return out


def _wide_means(df, dv, between, subject, *, complete: bool = True):
    """Participant x source table of mean ratings (complete rows only unless ``complete=False``), and the
    number of participants dropped."""
    wide = df.groupby([subject, between])[dv].mean().unstack(between)
    if not complete:
        return wide, 0
    full = wide.dropna()
    return full, len(wide) - len(full)


def _pair(wide: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, str]:
    """The participants who rated both ``a`` and ``b`` (pairwise complete cases) and a note on the others."""
    pair = wide[[a, b]].dropna()
    left = len(wide) - len(pair)
    return pair, (f"{left} participant(s) without ratings for both sources left out of this pair" if left else "")


@_rated_rows_only
def friedman(df: pd.DataFrame, dv: str = "rating", between: str = "source",
             subject: str = "participant_id") -> pd.DataFrame:
    """Friedman test on per-participant mean ratings by source, with Kendall's W.

    Participants lacking any source are dropped (counted in ``note``). Q is scipy's tie-corrected chi-square
    (``scipy.stats.friedmanchisquare``), W = Q / (n (k - 1)) (as ``pingouin.friedman``).

    Returns
    -------
    DataFrame
        One row: ``n`` (participants), ``k`` (sources), ``Q, dof, p, W, note``.
    """
    wide, dropped = _wide_means(df, dv, between, subject)
    n, k = wide.shape
    note = f"{dropped} participant(s) without ratings for every source dropped" if dropped else ""
    if n < 2 or k < 3:
        why = _insufficient(n) if n < 2 else f"needs >= 3 sources, got {k}"
        return pd.DataFrame([{"n": n, "k": k, "Q": np.nan, "dof": k - 1, "p": np.nan, "W": np.nan,
                              "note": "; ".join(x for x in (why, note) if x)}])
    q, p = sps.friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
    return pd.DataFrame([{"n": n, "k": k, "Q": q, "dof": k - 1, "p": p, "W": q / (n * (k - 1)), "note": note}])


@_rated_rows_only
def wilcoxon_posthoc(df: pd.DataFrame, dv: str = "rating", between: str = "source", subject: str = "participant_id",
                     reference: str | None = "real") -> pd.DataFrame:
    """Pairwise Wilcoxon signed-rank tests on participant means, Holm-corrected. Each pair uses every participant
    who rated both sources (pairwise complete cases; the others are counted in ``note``).

    Uses ``scipy.stats.wilcoxon`` on the paired differences rounded to 1e-9 (so equal means tie exactly;
    two-sided, scipy's default method: exact without ties/zeros, normal approximation otherwise, as
    ``pingouin.pairwise_tests(parametric=False)``) and
    ``statsmodels.stats.multitest.multipletests(method="holm")``.

    Returns
    -------
    DataFrame
        ``A, B, n, mean_A, mean_B, mean_diff`` (A - B), ``W`` (signed-rank statistic), ``rbc`` (matched-pairs
        rank-biserial correlation), ``p`` (uncorrected), ``p_holm``, ``note``.
    """
    from statsmodels.stats.multitest import multipletests

    wide, _ = _wide_means(df, dv, between, subject, complete=False)
    order = [s for s in source_order(df, between, reference) if s in wide.columns]
    rows = []
    for a, b in combinations(order, 2):
        pair, left = _pair(wide, a, b)
        d = np.round((pair[a] - pair[b]).to_numpy(), 9)  # equal means must tie / be zero despite float error
        n = d.size
        row = {"A": a, "B": b, "n": n, "mean_A": pair[a].mean(), "mean_B": pair[b].mean(),
               "mean_diff": d.mean() if n else np.nan}
        if n < 2 or not np.any(d != 0):
            why = _insufficient(n) if n < 2 else "all differences zero"
            row.update(W=np.nan, rbc=np.nan, p=np.nan, note="; ".join(x for x in (why, left) if x))
        else:
            res = sps.wilcoxon(d)
            rk = sps.rankdata(np.abs(d[d != 0]))
            rp, rm = rk[d[d != 0] > 0].sum(), rk[d[d != 0] < 0].sum()
            row.update(W=res.statistic, rbc=(rp - rm) / (rp + rm), p=res.pvalue, note=left)
        rows.append(row)
    out = pd.DataFrame(rows, columns=["A", "B", "n", "mean_A", "mean_B", "mean_diff", "W", "rbc", "p", "note"])
    ok = out["p"].notna().to_numpy()
    out["p_holm"] = np.nan
    if ok.any():
        out.loc[ok, "p_holm"] = multipletests(out.loc[ok, "p"].to_numpy(), method="holm")[1]
    return out[["A", "B", "n", "mean_A", "mean_B", "mean_diff", "W", "rbc", "p", "p_holm", "note"]]


# ------------------------------------------------------------------------------------- models, bootstrap
@_rated_rows_only
def ordinal_model(df: pd.DataFrame, dv: str = "rating", between: str = "source", subject: str = "participant_id",
                  reference: str = "real") -> pd.DataFrame:
    """Cumulative-logit (proportional odds) model rating ~ source, participant-clustered standard errors.

    ``statsmodels`` ``OrderedModel(distr="logit")`` has no random effects, so the participant grouping enters
    through cluster-robust (sandwich) covariance, ``cov_type="cluster"``.

    Returns
    -------
    DataFrame
        ``term, kind`` ("source" or "threshold"), ``coef`` (log cumulative odds of a higher rating vs the
        reference; thresholds on the latent scale), ``se, z, p, ci_low, ci_high, odds_ratio, n, note``.
    """
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    n = len(df)
    cols = ["term", "kind", "coef", "se", "z", "p", "ci_low", "ci_high", "odds_ratio", "n", "note"]
    order = source_order(df, between, reference)
    if n > ORDINAL_MAX_N:
        return pd.DataFrame([{"term": "", "kind": "", "n": n, "note": f"ordinal model skipped (n = {n:,} > "
                              f"{ORDINAL_MAX_N:,}); see the clustered bootstrap"}], columns=cols)
    if reference not in order or len(order) < 2 or df[dv].nunique() < 3:
        return pd.DataFrame([{"term": "", "kind": "", "n": n,
                              "note": "not applicable: needs the reference, another source and >= 3 rating levels"}],
                            columns=cols)
    X = pd.get_dummies(df[between]).reindex(columns=order[1:]).astype(float)
    groups = pd.factorize(df[subject])[0]
    model = OrderedModel(df[dv].to_numpy(), X, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(method="bfgs", disp=False, maxiter=500, cov_type="cluster", cov_kwds={"groups": groups})
    ci = np.asarray(res.conf_int())
    params, bse = np.asarray(res.params), np.asarray(res.bse)
    thr = model.transform_threshold_params(params)[1:-1]
    levels = np.sort(df[dv].unique())
    rows = []
    for i, name in enumerate(X.columns):
        rows.append({"term": name, "kind": "source", "coef": params[i], "se": bse[i], "z": params[i] / bse[i],
                     "p": 2 * sps.norm.sf(abs(params[i] / bse[i])), "ci_low": ci[i, 0], "ci_high": ci[i, 1],
                     "odds_ratio": np.exp(params[i]), "n": n,
                     "note": "" if res.mle_retvals.get("converged", True) else "optimizer did not converge"})
    for j, t in enumerate(thr):
        rows.append({"term": f"{levels[j]}|{levels[j + 1]}", "kind": "threshold", "coef": t, "n": n, "note": ""})
    return pd.DataFrame(rows, columns=cols).assign(se=lambda d: d["se"].where(d["kind"] == "source"))


@_rated_rows_only
def cluster_bootstrap(df: pd.DataFrame, dv: str = "rating", between: str = "source", subject: str = "participant_id",
                      reference: str = "real", *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Participant-clustered bootstrap of each source's mean-rating difference from the reference.

    Participants are resampled with replacement (all their ratings travel together); the difference of
    rating means (source - reference) is recomputed per resample. With few participants the plain percentile
    interval is too narrow (simulated coverage 92 % at nominal 95 % with 17 participants; ``harness
    validate-intervals``): the bootstrap variance of a mean over P clusters is (P - 1)/P of the unbiased one,
    and its spread is a t-, not a normal spread. The reported CI is therefore the percentile interval with each
    side's distance from the estimate multiplied by ``c = sqrt(P/(P-1)) * t_{P-1}(1 - a/2) / z(1 - a/2)``
    (1.12 for P = 17; -> 1 as P grows); the plain percentile interval is in ``ci_low_percentile`` /
    ``ci_high_percentile``.

    Returns
    -------
    DataFrame
        ``source, reference, diff, se, ci_low, ci_high, ci_low_percentile, ci_high_percentile, expansion,
        n_participants, n_boot, note``.
    """
    rng = np.random.default_rng(seed)
    order = source_order(df, between, reference)
    sums = df.pivot_table(index=subject, columns=between, values=dv, aggfunc="sum", fill_value=0)[order]
    cnts = df.pivot_table(index=subject, columns=between, values=dv, aggfunc="count", fill_value=0)[order]
    P = len(sums)
    rows = []
    if reference not in order:
        return pd.DataFrame([{between: reference, "note": f"reference {reference!r} absent"}])
    if P < 2:
        return pd.DataFrame([{between: s, "reference": reference, "n_participants": P, "note": _insufficient(P)}
                             for s in order[1:]])
    w = rng.multinomial(P, np.full(P, 1.0 / P), size=n_boot).astype(float)  # B x P resample weights
    with np.errstate(invalid="ignore", divide="ignore"):
        bmeans = (w @ sums.to_numpy(float)) / (w @ cnts.to_numpy(float))
    obs = sums.sum().to_numpy(float) / cnts.sum().to_numpy(float)
    a = (1 - ci) / 2
    expand = float(np.sqrt(P / (P - 1)) * sps.t.ppf(1 - a, P - 1) / sps.norm.ppf(1 - a))
    for j, s in enumerate(order[1:], start=1):
        d = bmeans[:, j] - bmeans[:, 0]
        d = d[np.isfinite(d)]
        est = obs[j] - obs[0]
        q_lo, q_hi = np.quantile(d, a), np.quantile(d, 1 - a)
        rows.append({between: s, "reference": reference, "diff": est, "se": d.std(ddof=1),
                     "ci_low": est - expand * (est - q_lo), "ci_high": est + expand * (q_hi - est),
                     "ci_low_percentile": q_lo, "ci_high_percentile": q_hi, "expansion": expand, "n_participants": P,
                     "n_boot": n_boot, "note": "" if d.size == n_boot else f"{n_boot - d.size} resamples lacked a source"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ agreement, flags
@_rated_rows_only
def agreement(df: pd.DataFrame, dv: str = "rating", subject: str = "participant_id", item: str = "image_id",
              between: str = "source", scale: tuple[int, int] = (1, 5)) -> pd.DataFrame:
    """Inter-rater agreement on images rated by >= 2 participants, overall and per source.

    * Krippendorff's alpha (ordinal), ``krippendorff.alpha`` from the image x rating-value count table
      (handles any number of raters per image; images with one rating carry no information).
    * ICC (``pingouin.intraclass_corr``): raters are not crossed with images, so the one-way models apply
      (ICC1 single rater, ICC1k mean of k raters); computed on images with exactly k ratings, k the most
      common count >= 2, raters relabelled 1..k within each image.

    Returns
    -------
    DataFrame
        ``source`` ("all" or a source), ``measure`` (krippendorff_alpha_ordinal, ICC1, ICC1k), ``value,
        ci_low, ci_high, p, n_images, k, note``.
    """
    import krippendorff
    import pingouin as pg

    rows = []
    lo, hi = scale
    subsets = [("all", df)] + [(s, g) for s, g in df.groupby(between, sort=True)]
    for name, d in subsets:
        cnt = d.groupby(item)[dv].size()
        multi = cnt[cnt >= 2]
        base = {"source": name, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
        if multi.empty:
            why = "not applicable: no image was rated by 2 or more participants"
            rows += [{**base, "measure": m, "n_images": 0, "k": np.nan, "note": why}
                     for m in ("krippendorff_alpha_ordinal", "ICC1", "ICC1k")]
            continue
        dm = d[d[item].isin(multi.index)]
        vc = pd.crosstab(dm[item], dm[dv]).reindex(columns=range(lo, hi + 1), fill_value=0).to_numpy()
        if np.count_nonzero(vc.sum(axis=0)) < 2:
            rows.append({**base, "measure": "krippendorff_alpha_ordinal", "n_images": len(multi), "k": np.nan,
                         "note": "not applicable: all ratings of multiply-rated images are equal"})
        else:
            a = krippendorff.alpha(value_counts=vc, value_domain=list(range(lo, hi + 1)),
                                   level_of_measurement="ordinal")
            rows.append({**base, "measure": "krippendorff_alpha_ordinal", "value": a, "n_images": len(multi),
                         "k": np.nan, "note": "images with >= 2 ratings; raters vary by image"})
        k = int(multi.value_counts().idxmax())
        ik = cnt[cnt == k].index
        dk = d[d[item].isin(ik)].copy()
        dk["_rater"] = dk.groupby(item).cumcount() + 1
        if len(ik) < 3 or dk[dv].nunique() < 2:
            why = f"not applicable: {len(ik)} image(s) with exactly {k} ratings (need >= 3 and varying ratings)"
            rows += [{**base, "measure": m, "n_images": len(ik), "k": k, "note": why} for m in ("ICC1", "ICC1k")]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            icc = pg.intraclass_corr(dk, targets=item, raters="_rater", ratings=dv).set_index("Type")
        for m, t in (("ICC1", "ICC(1,1)"), ("ICC1k", "ICC(1,k)")):
            r = icc.loc[t]
            rows.append({**base, "measure": m, "value": r["ICC"], "ci_low": r["CI95"][0], "ci_high": r["CI95"][1],
                         "p": r["pval"], "n_images": len(ik), "k": k,
                         "note": f"one-way random; images with exactly {k} ratings"})
    return pd.DataFrame(rows, columns=["source", "measure", "value", "ci_low", "ci_high", "p", "n_images", "k", "note"])


@_rated_rows_only
def artifact_flags(df: pd.DataFrame, flags: tuple[str, ...] | None = None, dv: str = "rating",
                   between: str = "source", reference: str = "real") -> pd.DataFrame:
    """Rate of each artifact flag per source (Wilson 95% CI) and its association with the rating.

    Association within each source: mean rating of flagged vs unflagged images, point-biserial correlation
    (``scipy.stats.pointbiserialr``) and a two-sided Mann-Whitney p (``scipy.stats.mannwhitneyu``).

    Returns
    -------
    DataFrame
        ``source, flag, n, count, rate, ci_low, ci_high, mean_flagged, mean_unflagged, r_pb, p, note``.
    """
    from statsmodels.stats.proportion import proportion_confint

    from human_eval.schema import FLAG_COLUMNS

    flags = tuple(f for f in (flags or FLAG_COLUMNS) if f in df.columns)
    rows = []
    for s in source_order(df, between, reference):
        d = df[df[between] == s]
        y = d[dv].to_numpy(float)
        for f in flags:
            x = d[f].to_numpy(bool)
            n, c = x.size, int(x.sum())
            lo, hi = proportion_confint(c, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)
            row = {between: s, "flag": f, "n": n, "count": c, "rate": c / n if n else np.nan, "ci_low": lo,
                   "ci_high": hi, "mean_flagged": y[x].mean() if c else np.nan,
                   "mean_unflagged": y[~x].mean() if c < n else np.nan, "r_pb": np.nan, "p": np.nan, "note": ""}
            if n < 2:
                row["note"] = _insufficient(n)
            elif c == 0 or c == n or np.ptp(y) == 0:
                row["note"] = "association undefined (flag or rating constant)"
            else:
                row["r_pb"] = sps.pointbiserialr(x, y).statistic
                row["p"] = sps.mannwhitneyu(y[x], y[~x], method="asymptotic").pvalue
            rows.append(row)
    return pd.DataFrame(rows, columns=[between, "flag", "n", "count", "rate", "ci_low", "ci_high", "mean_flagged",
                                       "mean_unflagged", "r_pb", "p", "note"])


@_rated_rows_only
def tost_vs_reference(df: pd.DataFrame, dv: str = "rating", between: str = "source", subject: str = "participant_id",
                      reference: str = "real", margin: float = 0.5, alpha: float = 0.05) -> pd.DataFrame:
    """Equivalence (TOST) of each source with the reference on participant-level paired mean differences
    (every participant who rated both; the others are counted in ``note``).

    "Indistinguishable from real" is claimed when both one-sided t-tests reject, i.e. the 90% CI of the mean
    paired difference lies inside (-margin, +margin) rating points (default margin 0.5 on a 1-5 scale).
    Equals ``pingouin.tost(x, y, bound=margin, paired=True)``.

    Returns
    -------
    DataFrame
        ``source, reference, n, mean_diff, sd_diff, ci90_low, ci90_high, margin, p_lower, p_upper, p``
        (= max of the two one-sided p), ``equivalent`` (p < alpha), ``note``.
    """
    wide, _ = _wide_means(df, dv, between, subject, complete=False)
    rows = []
    for s in source_order(df, between, reference):
        if s == reference or reference not in wide.columns or s not in wide.columns:
            continue
        pair, left = _pair(wide, s, reference)
        d = (pair[s] - pair[reference]).to_numpy()
        n = d.size
        row = {between: s, "reference": reference, "n": n, "margin": margin, "note": left}
        if n < 2:
            rows.append({**row, "note": "; ".join(x for x in (_insufficient(n), left) if x)})
            continue
        m, sd = d.mean(), d.std(ddof=1)
        se = sd / np.sqrt(n)
        if se == 0:
            rows.append({**row, "mean_diff": m, "sd_diff": 0.0, "note": "all paired differences equal"})
            continue
        p_lo = sps.t.sf((m + margin) / se, n - 1)  # H0: diff <= -margin
        p_hi = sps.t.cdf((m - margin) / se, n - 1)  # H0: diff >= +margin
        h = sps.t.ppf(1 - alpha, n - 1) * se
        p = max(p_lo, p_hi)
        rows.append({**row, "mean_diff": m, "sd_diff": sd, "ci90_low": m - h, "ci90_high": m + h, "p_lower": p_lo,
                     "p_upper": p_hi, "p": p, "equivalent": bool(p < alpha)})
    return pd.DataFrame(rows, columns=[between, "reference", "n", "mean_diff", "sd_diff", "ci90_low", "ci90_high",
                                       "margin", "p_lower", "p_upper", "p", "equivalent", "note"])
