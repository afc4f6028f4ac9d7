import json
import math

import numpy as np
import pytest

from utils import claims, config, records

SEEDS = "seeds: five-seed range 0.02–0.05; the limit doubles the largest"


def write_notebook(root, chapter, code="x = 1"):
    folder = root / "chapters"
    folder.mkdir(exist_ok=True)
    nb = {"cells": [{"cell_type": "code", "source": [code]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{chapter}.ipynb").write_text(json.dumps(nb))


def test_a_claim_that_holds_is_printed_and_recorded_with_its_bounds(isolated_root, capsys):
    claims.begin_chapter("01_decision_boundaries")
    claims.claim("noise flips few predictions", claims.below("flip rate", np.float32(0.04), 0.1, SEEDS),
                 {"images": np.int64(540)}, id="ch1.noise-flips-few", hypotheses=["H1"])
    out = capsys.readouterr().out
    assert "✔ verified [H1] noise flips few predictions" in out and "flip rate = 0.04 < 0.1; images = 540" in out
    (record,) = records.read_claims("01_decision_boundaries")
    assert record["id"] == "ch1.noise-flips-few" and record["holds"] and record["evidence"] == {"images": 540}
    assert record["bounds"] == [{"name": "flip rate", "value": pytest.approx(0.04), "op": "<", "limit": 0.1,
                                 "basis": SEEDS}]
    path = isolated_root / "data" / "claims" / "small" / "seed-0" / "01_decision_boundaries.json"
    assert path.is_file()


def test_bounds_of_every_kind():
    assert claims.between("r", 1.0, 0.9, 1.1, "theory: r = 1").holds
    assert not claims.above("r", 1.0, 1.0, "theory: r > 1").holds
    assert claims.above("r", 1.0, 1.0, "theory: r ≥ 1", strict=False).holds
    assert not claims.below("r", math.nan, 1.0, "theory: r < 1").holds
    with pytest.raises(ValueError, match="basis must read '<kind>: <reason>'"):
        claims.below("r", 1.0, 2.0, "because")
    with pytest.raises(TypeError, match="must be a real number"):
        claims.below("r", "1.0", 2.0, "theory: x")


def test_a_failed_claim_raises_and_marks_the_record_failed():
    claims.begin_chapter("02_input_perturbations")
    with pytest.raises(claims.ClaimFailed, match="does NOT hold; evidence: x = 1 > 2"):
        claims.claim("x is large", claims.above("x", 1, 2, "theory: x"), id="ch2.x-large")
    assert records.read_claims("02_input_perturbations")[0]["holds"] is False
    (row,) = records.status(["02_input_perturbations"])
    assert row["state"] == "failed" and "ch2.x-large did not hold" in row["action"]
    assert records.find("ch2.x-large") is None


def test_record_only_mode_prints_instead_of_raising(monkeypatch, capsys):
    monkeypatch.setenv("BOOK_CLAIMS", "record-only")
    claims.begin_chapter("02_input_perturbations")
    claims.claim("x is large", False, id="ch2.x-large")
    assert "✘ not judged here [ch2.x-large]" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["False", float("nan"), 1, None, [], [True]])
def test_holds_must_be_a_real_truth_value(bad):
    with pytest.raises(TypeError, match="holds must be True/False, a claims.Bound"):
        claims.claim("s", bad, id="ch1.s")


def test_bad_arguments_are_rejected_clearly():
    claims.begin_chapter("01_decision_boundaries")
    with pytest.raises(ValueError, match="unknown hypotheses \\['H9'\\]"):
        claims.claim("s", True, "e", id="ch1.s", hypotheses=["H9"])
    with pytest.raises(ValueError, match="statement must be a non-empty string"):
        claims.claim("  ", True, "e", id="ch1.s")
    with pytest.raises(TypeError, match="evidence must be a mapping, a string or None"):
        claims.claim("s", True, 3.0, id="ch1.s")
    with pytest.raises(ValueError, match="id must look like"):
        claims.claim("s", True, id="first claim")
    claims.claim("s", True, id="ch1.s")
    with pytest.raises(ValueError, match="claim id 'ch1.s' is used twice"):
        claims.claim("t", True, id="ch1.s")
    with pytest.raises(ValueError, match="chapter must be one of '01_decision_boundaries'"):
        claims.begin_chapter("../evil")
    with pytest.raises(ValueError, match="got '01_decision_boundary'"):
        records.status(["01_decision_boundary"])


def test_status_reports_missing_incomplete_stale_and_ok(isolated_root):
    chapter = "03_weight_perturbations"
    write_notebook(isolated_root, chapter)
    assert records.status([chapter])[0]["state"] == "missing"
    claims.begin_chapter(chapter)
    claims.claim("fine", True, id="ch3.fine")
    assert records.status([chapter])[0]["state"] == "incomplete"  # stopped before its end
    claims.end_chapter()
    assert records.status([chapter])[0] == {"chapter": chapter, "state": "ok", "claims": 1, "holding": 1,
                                           "action": "ok"}
    assert records.find("ch3.fine")["statement"] == "fine"
    write_notebook(isolated_root, chapter, "x = 2")
    assert records.status([chapter])[0]["state"] == "stale" and records.find("ch3.fine") is None


def test_records_are_kept_per_scale_and_seed(isolated_root):
    chapter = "04_post_training_quantization"
    for seed in (0, 1):
        config.use(seed=seed)
        claims.begin_chapter(chapter)
        claims.claim("s", claims.below("v", seed / 10, 1, "theory: v < 1"), id="ch4.s")
        claims.end_chapter()
    values = [records.read_claims(chapter, seed=s)[0]["bounds"][0]["value"] for s in (0, 1)]
    assert values == [0.0, 0.1]
    with pytest.raises(FileNotFoundError, match="run chapters/04_post_training_quantization.ipynb first"):
        records.read_claims(chapter, scale="full")


def test_a_corrupt_record_names_the_file_and_the_chapter_to_rerun(isolated_root):
    path = records.record_path("05_quantization_aware_training")
    path.parent.mkdir(parents=True)
    path.write_text('{"chapter": "05_quanti')
    with pytest.raises(records.ClaimRecordError, match="05_quantization_aware_training.json is unreadable .*re-run "
                       "chapters/05_quantization_aware_training.ipynb"):
        records.status(["05_quantization_aware_training"])


def test_records_are_written_atomically_without_leftovers(isolated_root):
    claims.begin_chapter("01_decision_boundaries")
    for i in range(3):
        claims.claim("s", True, id=f"ch1.s{i}")
    folder = records.record_path("01_decision_boundaries").parent
    assert [p.name for p in folder.iterdir()] == ["01_decision_boundaries.json"]


def test_claim_ids_map_to_chapters():
    assert records.chapter_of("ch4.rtn-like-noise") == "04_post_training_quantization"
    with pytest.raises(ValueError, match="claim id must look like"):
        records.chapter_of("ch9.x")
