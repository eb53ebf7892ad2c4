"""Label and condition vocabularies shared by every data source, and the one table that maps each labelled
source's label values onto the phantom's.

The phantom's label enum (:data:`LABELS`) is EchoBench's common label space: generators that translate label maps
(CycleGAN, CUT) read it, and every labelled source (CAMUS, EchoNet-Dynamic tracings, labelled folders) is mapped
onto it by :data:`SOURCE_LABELS` before any task compares labels across sources. Value 0 means "outside the
sector" on the phantom and "not annotated" on CAMUS/EchoNet: it is never scored as a structure.

==========  ==============================================  =====================================
source      source value → phantom label (value)            structures annotated
==========  ==============================================  =====================================
phantom     identity (0..11, :data:`LABELS`)                all
camus       0 → background (0), 1 LV endocardium → lv (3),   lv, myocardium (LV only), la
            2 LV myocardium → myocardium (2), 3 LA → la (5)
echonet     0 → background (0), 3 LV → lv (3)               lv (the traced LV cavity)
folder      identity: ``labelmaps/`` PNGs use the phantom    whatever values occur
            values (LV = 3, LA = 5, ...)
==========  ==============================================  =====================================

Sources map their values onto the phantom's when they read them, so image sets (and the segmentation tasks) always
hold phantom values; :func:`source_values` lists those a source may hold (CAMUS: 0, 2, 3, 5; EchoNet: 0, 3).
Scoring across sources (the segmentation tasks, :func:`to_classes`): a structure is scored when both sides' tables
annotate it (:func:`scored_structures`: ``background`` and ``tissue`` are never scored) and it occurs in both sides'
label maps; the others are skipped with a note, never counted as zero. One convention differs between sources: CAMUS's
``myocardium`` is the LV myocardium with the septum, the phantom's is every free wall (ventricles and atria) with the
septum labelled apart (``ivs``). When a CAMUS-style source meets a full-anatomy map (:data:`LV_MYOCARDIUM_SOURCES`),
the full map's myocardium becomes :func:`lv_myocardium` (the ``ivs`` plus the wall pixels whose nearest chamber is
the LV) and ``ivs`` is not scored apart. EchoNet annotates the LV cavity only, so only ``lv`` is scored against it.
"""

from __future__ import annotations

import numpy as np

from harness.errors import DataError

#: Label enum of the phantom's label maps (uint8 values): EchoBench's common label space.
LABELS: dict[str, int] = {
    "background": 0,  # outside the ultrasound sector (phantom); not annotated (CAMUS, EchoNet)
    "tissue": 1,  # sector tissue around the heart
    "myocardium": 2,  # ventricular free walls and atrial walls (CAMUS: the LV myocardium)
    "lv": 3,
    "rv": 4,
    "la": 5,
    "ra": 6,
    "ivs": 7,  # interventricular septum
    "ias": 8,  # interatrial septum
    "mitral": 9,  # mitral valve leaflets
    "tricuspid": 10,  # tricuspid valve leaflets
    "pericardium": 11,
}
LABEL_NAMES: tuple[str, ...] = tuple(sorted(LABELS, key=LABELS.get))

#: The phantom's named conditions (the SD-LoRA prompts and the fault ``drop-condition`` use them too).
CONDITIONS: tuple[str, ...] = ("normal", "asd", "vsd", "dilated-lv", "dilated-rv", "lvh")
CONDITION_WEIGHTS: dict[str, float] = {"normal": 0.4, "asd": 0.12, "vsd": 0.12, "dilated-lv": 0.12,
                                       "dilated-rv": 0.12, "lvh": 0.12}
AGES: tuple[str, ...] = ("child", "adult")
#: The phantom's splits and their seed-stream ids (distinct ids: the splits never overlap).
SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1, "reference": 2}

#: source name -> {source label value: phantom label name}. The one cross-source label table (see module doc).
SOURCE_LABELS: dict[str, dict[int, str]] = {
    "phantom": {v: k for k, v in LABELS.items()},
    "camus": {0: "background", 1: "lv", 2: "myocardium", 3: "la"},
    "echonet": {0: "background", 3: "lv"},
    "folder": {v: k for k, v in LABELS.items()},
}


def to_phantom_labels(label_map: np.ndarray, source: str, *, where: str = "") -> np.ndarray:
    """Map a ``source`` label map onto the phantom's values (uint8). A value outside the table is a
    :class:`DataError` naming it, the source and ``where`` (a file name)."""
    table = SOURCE_LABELS[source]
    values = np.unique(label_map)
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        raise DataError(f"{where + ': ' if where else ''}label value(s) {bad} are not in the {source} label table "
                        f"(allowed: {sorted(table)}; see harness/data/labels.py)")
    lut = np.zeros(256, dtype=np.uint8)
    for v, name in table.items():
        lut[v] = LABELS[name]
    return lut[np.asarray(label_map).astype(np.intp)]  # every value is in the table (checked above)


def structures(source: str) -> tuple[str, ...]:
    """The phantom label names annotated by ``source`` (background excluded)."""
    return tuple(name for name in dict.fromkeys(SOURCE_LABELS[source].values()) if name != "background")


# scoring label maps across sources (segmentation tasks) ---------------------------------------------------------
#: Sources whose ``myocardium`` is the LV myocardium only, septum included (CAMUS). When such a source is compared
#: with a full-anatomy label map (phantom, folder), the full map's LV myocardium is derived by
#: :func:`lv_myocardium`: the ``ivs`` plus the ``myocardium`` pixels whose nearest cardiac chamber is the LV.
LV_MYOCARDIUM_SOURCES: frozenset[str] = frozenset({"camus"})
#: Labels never scored as structures: ``background`` (outside the sector / not annotated) and ``tissue`` (the
#: sector around the heart: trivially segmented, it would inflate a mean Dice).
NOT_SCORED: frozenset[str] = frozenset({"background", "tissue"})
_CHAMBERS = ("lv", "rv", "la", "ra")


def labelled_sources() -> tuple[str, ...]:
    """The sources that have a label table (for error messages: which references can be segmented)."""
    return tuple(SOURCE_LABELS)


def check_source(source: str) -> None:
    """A :class:`DataError` naming the labelled sources when ``source`` has no label table."""
    if source not in SOURCE_LABELS:
        raise DataError(f"data source {source!r} has no label table; labelled sources: {', '.join(SOURCE_LABELS)} "
                        "(folder: a labelmaps/ folder beside images/ with the phantom's label values)")


def scored_structures(source: str) -> tuple[str, ...]:
    """The structures a segmentation task may score on ``source``: :func:`structures` minus :data:`NOT_SCORED`."""
    check_source(source)
    return tuple(s for s in structures(source) if s not in NOT_SCORED)


def lv_myocardium_convention(*sources: str) -> bool:
    """True when ``myocardium`` must mean the LV myocardium (septum included): one of ``sources`` annotates only
    that (:data:`LV_MYOCARDIUM_SOURCES`), so full-anatomy maps are reduced to it before comparing."""
    return any(s in LV_MYOCARDIUM_SOURCES for s in sources)


def lv_myocardium(label_map: np.ndarray) -> np.ndarray:
    """Boolean mask of the LV myocardium of a full-anatomy map in phantom values: the interventricular septum
    plus the ``myocardium`` pixels whose nearest chamber (LV, RV, LA, RA; Euclidean) is the LV. This is the
    CAMUS definition (LV endocardium to epicardium, septum included) applied to the phantom's walls."""
    from scipy.ndimage import distance_transform_edt

    lab = np.asarray(label_map)
    walls = lab == LABELS["myocardium"]
    if not (lab == LABELS["lv"]).any():
        return np.zeros(lab.shape, dtype=bool)
    dist = np.stack([distance_transform_edt(lab != LABELS[c]) if (lab == LABELS[c]).any() else np.full(lab.shape, np.inf)
                     for c in _CHAMBERS])
    nearest_lv = np.argmin(dist, axis=0) == 0
    return (walls & nearest_lv) | (lab == LABELS["ivs"])


def source_values(source: str) -> dict[int, str]:
    """The phantom values a ``source``'s label maps hold once loaded (sources map their own values with
    :func:`to_phantom_labels` when they read them, so image sets always store phantom values), with their names."""
    check_source(source)
    return {LABELS[name]: name for name in SOURCE_LABELS[source].values()}


def check_values(label_map: np.ndarray, source: str, *, where: str = "") -> None:
    """A :class:`DataError` naming ``where`` when a loaded ``source`` label map holds a phantom value that the source
    does not annotate (e.g. an EchoNet map with anything but 0 and the LV's 3)."""
    allowed = source_values(source)
    bad = sorted({int(v) for v in np.unique(label_map)} - set(allowed))
    if bad:
        raise DataError(f"{where + ': ' if where else ''}label value(s) {bad} are not in the {source} label table "
                        f"(phantom values allowed for {source}: {sorted(allowed)}; see harness/data/labels.py)")


def to_classes(label_map: np.ndarray, source: str, scored: tuple[str, ...], *, lv_myocardium_only: bool = False,
               where: str = "") -> np.ndarray:
    """A loaded ``source`` label map (phantom values, see :func:`source_values`) → a class-index map for
    segmentation (uint8): ``k + 1`` where structure ``scored[k]`` is, 0 elsewhere (background, tissue and every
    structure not scored).

    ``lv_myocardium_only`` (see :func:`lv_myocardium_convention`): ``myocardium`` is the LV myocardium; a
    full-anatomy map (a source not in :data:`LV_MYOCARDIUM_SOURCES`) is reduced by :func:`lv_myocardium` and its
    ``ivs`` then counts as myocardium, not as a structure of its own. A value the source does not annotate is a
    :class:`DataError` (:func:`check_values`).
    """
    lab = np.asarray(label_map)
    check_values(lab, source, where=where)
    out = np.zeros(lab.shape, dtype=np.uint8)
    derive = lv_myocardium_only and source not in LV_MYOCARDIUM_SOURCES
    for k, name in enumerate(scored):
        if name in NOT_SCORED or name not in LABELS:
            raise ValueError(f"structure {name!r} cannot be scored")
        if derive and name == "myocardium":
            mask = lv_myocardium(lab)
        elif derive and name == "ivs":
            continue  # part of the LV myocardium under this convention
        else:
            mask = lab == LABELS[name]
        out[mask] = k + 1
    return out
