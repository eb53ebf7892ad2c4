"""Import validation: every bad-input case of FORMATS.md gives a ValidationError naming file/line/column."""

import pandas as pd
import pytest

from harness.errors import DataError
from human_eval.schema import ValidationError, canonical_source, read_study, study_from_frames

HEADER = "participant_id,image_id,source,rating\n"
GOOD = HEADER + "P1,a,real,3\nP1,b,sd,4\nP2,a,real,2\nP2,c,Stable Diffusion,5\n"


def write(tmp_path, text, name="ratings.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def problems(tmp_path, text, **kw):
    with pytest.raises(ValidationError) as ei:
        read_study(write(tmp_path, text), **kw)
    assert isinstance(ei.value, DataError)
    return ei.value.problems


def test_good_file_and_aliases(tmp_path):
    t = read_study(write(tmp_path, GOOD))
    assert list(t.ratings["source"]) == ["real", "sd", "real", "sd"]
    assert t.ratings["rating"].tolist() == [3, 4, 2, 5]
    assert t.ratings["line"].tolist() == [2, 3, 4, 5]
    assert len(t.content_hash) == 64
    for raw, canon in [("Stable Diffusion", "sd"), ("sd-lora", "sd"), ("SD", "sd"), ("CycleGAN", "cyclegan"),
                       ("Real", "real"), ("EchoNet", "real"), ("My_New GAN", "my_new_gan")]:
        assert canonical_source(raw) == canon


@pytest.mark.parametrize("value,msg", [("0", "'0' is outside 1..5"), ("6", "'6' is outside 1..5"),
                                       ("3.5", "'3.5' is not an integer"), ("three", "'three' is not an integer"),
                                       ("", "empty rating")])
def test_bad_ratings(tmp_path, value, msg):
    text = HEADER + "P1,a,real,3\n" + f"P1,b,sd,{value}\n"
    (p,) = problems(tmp_path, text)
    assert p.startswith("ratings.csv line 3, column rating:") and msg in p


def test_all_problems_reported_at_once(tmp_path):
    text = HEADER + "P1,a,real,0\nP1,b,sd,7\nP1,a,real,3\n"
    ps = problems(tmp_path, text)
    assert any("line 2" in p and "'0'" in p for p in ps)
    assert any("line 3" in p and "'7'" in p for p in ps)
    assert any("line 4" in p and "already rated" in p and "line 2" in p for p in ps)


def test_missing_column(tmp_path):
    (p,) = problems(tmp_path, "participant_id,image_id,rating\nP1,a,3\n")
    assert "missing required column(s) source" in p and "line 1" in p


def test_duplicate_participant_image(tmp_path):
    (p,) = problems(tmp_path, HEADER + "P1,a,real,3\nP2,a,real,3\nP1,a,real,4\n")
    assert "ratings.csv line 4, column image_id" in p and "line 2" in p


def test_image_under_two_sources(tmp_path):
    (p,) = problems(tmp_path, HEADER + "P1,a,real,3\nP2,a,CUT,3\n")
    assert "image 'a'" in p and "'real'" in p and "'cut'" in p


def test_participants_missing_a_rater_and_unused_participant(tmp_path):
    r = write(tmp_path, GOOD)
    p = write(tmp_path, "participant_id,experience_years\nP1,3\nP9,1\n", "participants.csv")
    with pytest.raises(ValidationError) as ei:
        read_study(r, p)
    (msg,) = ei.value.problems
    assert "ratings.csv line 4, column participant_id: participant 'P2' is not in participants.csv" in msg
    p2 = write(tmp_path, "participant_id,experience_years\nP1,3\nP2,5\nP9,1\n", "participants.csv")
    t = read_study(r, p2)
    assert any("P9" in w and "without ratings" in w for w in t.warnings)
    assert t.participants.set_index("participant_id").loc["P2", "experience_years"] == 5.0


def test_non_utf8(tmp_path):
    data = (HEADER + "P1,a,real,3\n").encode() + b"P2,caf\xe9,real,3\n"
    off = data.index(bytes([0xE9]))
    (p,) = problems(tmp_path, data)
    assert "ratings.csv line 3" in p and f"byte offset {off}" in p and "UTF-8" in p


def test_semicolon_bom_blank_lines_and_multiline_comment(tmp_path):
    text = "\ufeffparticipant_id;image_id;source;rating;comment;walls_not_visible\n" \
           "P1;a;real;3;\"two\nlines\";yes\n\nP1;b;sd;9;;0\n"
    (p,) = problems(tmp_path, text)
    assert p.startswith("ratings.csv line 5, column rating")  # multi-line field and blank line counted
    t = read_study(write(tmp_path, text.replace(";9;", ";4;")))
    assert t.ratings["walls_not_visible"].tolist() == [True, False]
    assert t.ratings["comment"].iloc[0] == "two\nlines"


def test_bad_flag(tmp_path):
    (p,) = problems(tmp_path, "participant_id,image_id,source,rating,cropped_image\nP1,a,real,3,maybe\n")
    assert "column cropped_image" in p and "'maybe'" in p


def test_header_only_and_empty(tmp_path):
    (p,) = problems(tmp_path, HEADER)
    assert "no data rows" in p
    (p,) = problems(tmp_path, "")
    assert "empty" in p


def test_unbalanced_warning_and_scale(tmp_path):
    t = read_study(write(tmp_path, GOOD + "P1,d,real,1\n"))
    assert any("unbalanced" in w for w in t.warnings)
    (p,) = problems(tmp_path, HEADER + "P1,a,real,7\n", scale=(0, 6))
    assert "outside 0..6" in p


def test_from_frames_same_rules():
    df = pd.DataFrame({"participant_id": ["P1", "P1"], "image_id": ["a", "b"], "source": ["real", "sd"],
                       "rating": [3, 6]})
    with pytest.raises(ValidationError, match="outside 1..5"):
        study_from_frames(df)
    t = study_from_frames(df.assign(rating=[3, 5]))
    assert t.ratings["rating"].tolist() == [3, 5]
