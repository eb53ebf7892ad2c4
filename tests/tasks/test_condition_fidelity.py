"""condition-fidelity on the phantom: images drawn with the requested condition score well above chance, a generator
that ignores the condition scores at chance, an unconditional generator is not applicable."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.phantom import PhantomSource
from harness.errors import DataError
from tasks.condition_fidelity import ConditionFidelityTask, chance_accuracy
from tests.tasks.seg_fixtures import SIZE, TINY, context, phantom_data

CONDS = ("normal", "dilated-lv", "dilated-rv")  # the phantom's most visible conditions: a tiny classifier learns them
OPTS = {k: v for k, v in TINY.items() if k != "n_boot"} | {"steps": 150}
N_GEN = 48

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def data():
    return phantom_data(n_train=60, n_test=N_GEN, n_ref=12, conditions=",".join(CONDS))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("task-models")


def requested() -> list[str]:
    return [CONDS[i % len(CONDS)] for i in range(N_GEN)]


def test_real_with_conditions_well_above_chance(data, cache, tmp_path):
    src = PhantomSource(size=SIZE, conditions=",".join(CONDS))
    batch = src.render_samples("test", range(N_GEN), conditions=requested())  # `real` asked for these conditions
    ctx = context(data, "real", batch.images, batch.label_maps, conditions=requested(), cache_dir=cache)
    ctx.artifacts_dir = tmp_path
    (row,) = ConditionFidelityTask(**OPTS).evaluate(ctx)
    d = row.details
    assert row.metric == "condition_accuracy" and row.n == N_GEN
    assert row.value > d["chance"] + 0.25 and row.ci_low > d["chance"]
    assert d["classes"] == list(CONDS) and np.array(d["confusion_matrix"]).sum() == N_GEN
    assert np.trace(np.array(d["confusion_matrix"])) == d["n_correct"] == round(row.value * N_GEN)
    # rows are the requested conditions (16 each), columns the predictions; the CI is Wilson's (statsmodels)
    assert np.array(d["confusion_matrix"]).sum(axis=1).tolist() == [N_GEN // len(CONDS)] * len(CONDS)
    from statsmodels.stats.proportion import proportion_confint

    assert (row.ci_low, row.ci_high) == pytest.approx(proportion_confint(d["n_correct"], N_GEN, method="wilson"))
    assert d["reference_accuracy"] is not None and (tmp_path / "condition_confusion.csv").is_file()


def test_condition_ignoring_generator_at_chance(data, cache):
    # images drawn from the natural mix, whatever was asked: accuracy is the chance level of the predictions
    ctx = context(data, "ignores", data.test.images, None, conditions=requested(), cache_dir=cache)
    (row,) = ConditionFidelityTask(**OPTS).evaluate(ctx)
    assert row.details["classifier"]["cache"] == "hit"
    assert abs(row.value - row.details["chance"]) < 0.2
    assert row.ci_low <= row.details["chance"] + 0.05


def test_unconditional_generator_not_applicable(data):
    (row,) = ConditionFidelityTask(**OPTS).evaluate(context(data, "labelmap", data.test.images, None))
    assert np.isnan(row.value) and row.details["not_applicable"].startswith("not applicable: unconditional")
    ctx = context(data, "sd-lora", data.test.images, None, conditions=["a heart"] * N_GEN)
    ctx.train_conditions = lambda: ["normal"] * len(data.train.images)
    with pytest.raises(DataError, match="1 distinct condition"):
        ConditionFidelityTask(**OPTS).evaluate(ctx)


def test_chance_accuracy_closed_form():
    req = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 2, 2])
    # p_req = (2, 3, 1)/6, p_pred = (1, 3, 2)/6
    assert chance_accuracy(req, pred, 3) == pytest.approx((2 * 1 + 3 * 3 + 1 * 2) / 36)


def test_labelled_folder_captions_carry_the_conditions(tmp_path, capsys):
    """A user's folder (train/ val/ test/, each images/ + captions.csv with a condition column): the classifier learns
    the training split's caption conditions, `real` (the val split, with its captions' conditions) scores well above
    chance, through the command line."""
    import json

    from sqlalchemy import select

    from harness.cli import run_cli
    from harness.data.export import export_data
    from harness.store import Result, Store

    src = PhantomSource(size=SIZE, conditions=",".join(CONDS))
    root = tmp_path / "frames"
    for split, n, phantom_split in (("train", 60, "train"), ("val", N_GEN, "test"), ("test", 12, "reference")):
        export_data(src, phantom_split, n, root / split)
    opts = [a for k, v in OPTS.items() for a in ("--task-option", f"condition-fidelity.{k}={v}")]
    capsys.readouterr()
    rc = run_cli(["run", "-g", "real", "--data", f"folder:{root}", "-t", "condition-fidelity", "--n", str(N_GEN),
                  "--n-ref", "12", "--n-train", "60", "--json", *opts])
    out = capsys.readouterr()
    assert rc == 0, out.err
    (row,) = [json.loads(ln) for ln in out.out.splitlines() if ln.strip()]
    with Store().session() as session:
        (stored,) = list(session.scalars(select(Result).where(Result.metric == "condition_accuracy")))
        d = stored.details
    assert row["metric"] == "condition_accuracy" and row["n"] == N_GEN, row  # measured: accuracy 0.81, chance 0.38
    assert sorted(d["classes"]) == sorted(CONDS)
    assert row["value"] > d["chance"] + 0.25 and row["ci_low"] > d["chance"]
    assert np.array(d["confusion_matrix"]).sum() == N_GEN
