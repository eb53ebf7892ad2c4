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
