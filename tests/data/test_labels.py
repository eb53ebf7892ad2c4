"""The cross-source label table (harness/data/labels.py): every source's values, the scoring class maps and the
CAMUS LV-myocardium convention on phantom maps."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import labels as L
from harness.errors import DataError

# every source's expected table: source value -> phantom label name
EXPECTED = {
    "phantom": {0: "background", 1: "tissue", 2: "myocardium", 3: "lv", 4: "rv", 5: "la", 6: "ra", 7: "ivs", 8: "ias",
                9: "mitral", 10: "tricuspid", 11: "pericardium"},
    "camus": {0: "background", 1: "lv", 2: "myocardium", 3: "la"},
    "echonet": {0: "background", 3: "lv"},
    "folder": {0: "background", 1: "tissue", 2: "myocardium", 3: "lv", 4: "rv", 5: "la", 6: "ra", 7: "ivs", 8: "ias",
               9: "mitral", 10: "tricuspid", 11: "pericardium"},
}
SCORED = {
    "phantom": ("myocardium", "lv", "rv", "la", "ra", "ivs", "ias", "mitral", "tricuspid", "pericardium"),
    "camus": ("lv", "myocardium", "la"),
    "echonet": ("lv",),
    "folder": ("myocardium", "lv", "rv", "la", "ra", "ivs", "ias", "mitral", "tricuspid", "pericardium"),
}


def test_every_source_is_tested():
    assert set(L.SOURCE_LABELS) == set(EXPECTED) == set(L.labelled_sources())


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_source_values_map_to_the_phantom_values(source):
    values = np.array(sorted(EXPECTED[source]), dtype=np.uint8)
    mapped = L.to_phantom_labels(values.reshape(1, -1), source)[0]
    assert [int(v) for v in mapped] == [L.LABELS[EXPECTED[source][int(v)]] for v in values]
    assert set(L.scored_structures(source)) == set(SCORED[source])
    assert "background" not in L.structures(source)


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_value_outside_the_table_names_it(source):
    bad = max(EXPECTED[source]) + 1
    with pytest.raises(DataError, match=rf"frame\.png: label value\(s\) \[{bad}\] are not in the {source} label table"):
        L.to_phantom_labels(np.array([[0, bad]], np.uint8), source, where="frame.png")


def test_unknown_source_lists_the_labelled_ones():
    with pytest.raises(DataError, match="labelled sources: phantom, camus, echonet, folder"):
        L.scored_structures("mystery")


def _phantom_map() -> np.ndarray:
    """A tiny full-anatomy map: LV (right) and RV (left) separated by the IVS, free walls, LA below the LV."""
    m = np.full((12, 14), L.LABELS["tissue"], np.uint8)
    m[2:6, 1:3] = L.LABELS["myocardium"]  # RV free wall
    m[2:6, 3:6] = L.LABELS["rv"]
    m[2:6, 6:7] = L.LABELS["ivs"]
    m[2:6, 7:11] = L.LABELS["lv"]
    m[2:6, 11:13] = L.LABELS["myocardium"]  # LV free wall
    m[6:7, 7:11] = L.LABELS["mitral"]
    m[7:10, 7:11] = L.LABELS["la"]
    m[7:10, 11:12] = L.LABELS["myocardium"]  # LA wall: nearest chamber is the LA
    return m


def test_lv_myocardium_is_ivs_plus_walls_nearest_the_lv():
    m = _phantom_map()
    got = L.lv_myocardium(m)
    want = np.zeros_like(got)
    want[2:6, 6:7] = True  # septum
    want[2:6, 11:13] = True  # LV free wall
    np.testing.assert_array_equal(got, want)


def test_to_classes_camus_convention_on_phantom_and_camus_maps():
    scored = ("lv", "myocardium", "la")
    phantom = L.to_classes(_phantom_map(), "phantom", scored, lv_myocardium_only=True)
    assert (phantom == 2).sum() == 4 * 1 + 4 * 2  # septum + LV free wall, not the RV or LA walls
    assert (phantom == 1).sum() == 16 and (phantom == 3).sum() == 12
    camus = L.to_phantom_labels(np.array([[0, 1, 2, 3]], np.uint8), "camus")  # as the CAMUS source loads it
    np.testing.assert_array_equal(camus, [[0, 3, 2, 5]])
    np.testing.assert_array_equal(L.to_classes(camus, "camus", scored, lv_myocardium_only=True), [[0, 1, 2, 3]])
    # the phantom's own convention: every wall is myocardium, the septum its own structure
    full = L.to_classes(_phantom_map(), "phantom", ("myocardium", "ivs"), lv_myocardium_only=False)
    assert (full == 1).sum() == (_phantom_map() == L.LABELS["myocardium"]).sum() and (full == 2).sum() == 4
    assert L.lv_myocardium_convention("phantom", "camus") and not L.lv_myocardium_convention("phantom", "echonet")


def test_echonet_lv_on_phantom_maps():
    lv = L.to_classes(_phantom_map(), "phantom", ("lv",))
    np.testing.assert_array_equal(lv == 1, _phantom_map() == L.LABELS["lv"])
    np.testing.assert_array_equal(L.to_classes(np.array([[0, 3, 3]], np.uint8), "echonet", ("lv",)), [[0, 1, 1]])


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_loaded_maps_hold_phantom_values_of_the_annotated_structures(source):
    """Image sets store what sources yield after mapping: phantom values of the structures the source annotates."""
    allowed = L.source_values(source)
    assert allowed == {L.LABELS[name]: name for name in EXPECTED[source].values()}
    loaded = L.to_phantom_labels(np.array([sorted(EXPECTED[source])], np.uint8), source)
    L.check_values(loaded, source)  # what a source yields is always accepted
    outside = sorted(set(range(12)) - set(allowed))
    if outside:
        with pytest.raises(DataError, match=rf"map.png: label value\(s\) \[{outside[0]}\] are not in the {source}"):
            L.check_values(np.array([[0, outside[0]]], np.uint8), source, where="map.png")
