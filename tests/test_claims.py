import json
import math

import numpy as np
import pytest

from utils import claims, config, evidence, predictions, records

SEEDS = "seeds: five-seed range 0.02–0.05; the limit doubles the largest"


def write_notebook(root, chapter, code="x = 1"):
    folder = root / "chapters"
    folder.mkdir(exist_ok=True)
    nb = {"cells": [{"cell_type": "code", "source": [code]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{chapter}.ipynb").write_text(json.dumps(nb))


def test_a_claim_that_holds_is_printed_and_recorded_with_its_bounds(isolated_root, capsys):
    records.begin("01_decision_boundaries")
    claims.claim("noise flips few predictions", claims.below("flip rate", np.float32(0.04), 0.1, SEEDS),
                 {"images": np.int64(540)}, id="ch1.noise-flips-few")
    out = capsys.readouterr().out
    assert "✔ verified: noise flips few predictions" in out and "flip rate = 0.04 < 0.1; images = 540" in out
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
    with pytest.raises(ValueError, match="'between' needs low <= high"):
        claims.between("r", 1.0, 2.0, 1.0, "theory: x")


def test_a_failed_claim_raises_and_marks_the_record_failed():
    records.begin("02_input_perturbations")
    with pytest.raises(claims.ClaimFailed, match="does NOT hold; evidence: x = 1 > 2"):
        claims.claim("x is large", claims.above("x", 1, 2, "theory: x"), id="ch2.x-large")
    assert records.read_claims("02_input_perturbations")[0]["holds"] is False
    (row,) = records.status(["02_input_perturbations"])
    assert row["state"] == "failed" and "ch2.x-large did not hold" in row["action"]
    assert records.find("ch2.x-large") is None


def test_record_only_mode_prints_instead_of_raising(monkeypatch, capsys):
    monkeypatch.setenv("BOOK_CLAIMS", "record-only")
    records.begin("02_input_perturbations")
    claims.claim("x is large", False, id="ch2.x-large")
    assert "✘ not judged here [ch2.x-large]" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["False", float("nan"), 1, None, [], [True]])
def test_holds_must_be_a_real_truth_value(bad):
    records.begin("01_decision_boundaries")
    with pytest.raises(TypeError, match="holds must be True/False, a claims.Bound"):
        claims.claim("s", bad, id="ch1.s")


def test_bad_arguments_are_rejected_clearly():
    records.begin("01_decision_boundaries")
    with pytest.raises(ValueError, match="statement must be a non-empty string"):
        claims.claim("  ", True, "e", id="ch1.s")
    with pytest.raises(TypeError, match="evidence must be a mapping, a string or None"):
        claims.claim("s", True, 3.0, id="ch1.s")
    with pytest.raises(ValueError, match="id must look like"):
        claims.claim("s", True, id="first claim")
    with pytest.raises(ValueError, match="chapter must be one of '01_decision_boundaries'"):
        records.begin("../evil")
    with pytest.raises(ValueError, match="got '01_decision_boundary'"):
        records.status(["01_decision_boundary"])


def test_a_cell_run_twice_replaces_its_own_entry():
    records.begin("01_decision_boundaries")
    with pytest.raises(claims.ClaimFailed):
        claims.claim("s", claims.above("v", 0.0, 1.0, "theory: v"), id="ch1.s")
    assert records.status(["01_decision_boundaries"])[0]["state"] == "failed"
    claims.claim("s", claims.above("v", 2.0, 1.0, "theory: v"), id="ch1.s")  # fixed and run again
    (entry,) = records.read_claims("01_decision_boundaries")
    assert entry["holds"] and entry["bounds"][0]["value"] == 2.0
    assert records.status(["01_decision_boundaries"])[0]["state"] == "incomplete"


def test_a_claim_outside_a_started_chapter_is_an_error_not_a_green_tick(monkeypatch):
    monkeypatch.setitem(records._state, "record", None)
    with pytest.raises(records.ClaimRecordError, match="no chapter is being recorded: run the chapter from its first"):
        claims.claim("s", True, id="ch1.s")
    records.begin("01_decision_boundaries")
    with pytest.raises(records.ClaimRecordError, match="belongs to 02_input_perturbations"):
        claims.claim("s", True, id="ch2.s")


def test_status_reports_missing_incomplete_stale_and_ok(isolated_root):
    chapter = "03_weight_perturbations"
    write_notebook(isolated_root, chapter)
    assert records.status([chapter])[0]["state"] == "missing"
    records.begin(chapter)
    claims.claim("fine", True, id="ch3.fine")
    assert records.status([chapter])[0]["state"] == "incomplete"  # stopped before its end
    records.end()
    assert records.status([chapter])[0] == {"chapter": chapter, "state": "ok", "claims": 1, "holding": 1,
                                           "predictions": 0, "action": "ok"}
    assert records.find("ch3.fine")["statement"] == "fine"
    write_notebook(isolated_root, chapter, "x = 2")
    assert records.status([chapter])[0]["state"] == "stale" and records.find("ch3.fine") is None


def test_records_are_kept_per_scale_and_seed(isolated_root):
    chapter = "04_post_training_quantization"
    for seed in (0, 1):
        config.use(seed=seed)
        records.begin(chapter)
        claims.claim("s", claims.below("v", seed / 10, 1, "theory: v < 1"), id="ch4.s")
        records.end()
    values = [records.read_claims(chapter, seed=s)[0]["bounds"][0]["value"] for s in (0, 1)]
    assert values == [0.0, 0.1]
    assert len(records.read_claims(seed=0)) == 1  # every chapter recorded at a seed
    with pytest.raises(FileNotFoundError, match="run chapters/04_post_training_quantization.ipynb first"):
        records.read_claims(chapter, scale="full")


@pytest.mark.parametrize("content, reason", [
    ('{"chapter": "06_quanti', "Unterminated string"),
    ('{"chapter": "06_quantization_aware_training", "claims": []}', "record format 1"),
    (None, "claims\\[0\\] has no valid id"),
    ("holds-string", "holds must be true or false"),
    ("no-value", "has no numeric value"),
])
def test_a_bad_record_names_the_file_and_the_chapter_to_rerun(isolated_root, content, reason):
    chapter = "06_quantization_aware_training"
    path = records.record_path(chapter)
    path.parent.mkdir(parents=True)
    good = {"format": 2, "chapter": chapter, "scale": "small", "seed": 0, "digest": None, "status": "complete",
            "claims": [{"id": "ch6.s", "statement": "s", "holds": True, "evidence": {},
                        "bounds": [{"name": "v", "value": 1.0, "op": "<", "limit": 2.0, "basis": "theory: v"}]}],
            "predictions": []}
    if content is None:
        del good["claims"][0]["id"]
    elif content == "holds-string":
        good["claims"][0]["holds"] = "false"
    elif content == "no-value":
        del good["claims"][0]["bounds"][0]["value"]
    path.write_text(content if content and content.startswith("{") else json.dumps(good))
    with pytest.raises(records.ClaimRecordError, match=f"{chapter}.json is unreadable \\(.*{reason}.*re-run "
                       f"chapters/{chapter}.ipynb"):
        records.read_claims(chapter)
    (row,) = records.status([chapter])
    assert row["state"] == "unreadable" and f"re-run chapters/{chapter}.ipynb" in row["action"]


def test_records_are_written_atomically_without_leftovers(isolated_root):
    records.begin("01_decision_boundaries")
    for i in range(3):
        claims.claim("s", True, id=f"ch1.s{i}")
    folder = records.record_path("01_decision_boundaries").parent
    assert [p.name for p in folder.iterdir()] == ["01_decision_boundaries.json"]


def test_a_folder_that_cannot_be_written_names_the_setting(isolated_root, monkeypatch):
    (isolated_root / "ro").mkdir()
    (isolated_root / "ro").chmod(0o500)
    monkeypatch.setenv("BOOK_CLAIMS_DIR", str(isolated_root / "ro" / "records"))
    try:
        import os
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        with pytest.raises(PermissionError, match="set BOOK_CLAIMS_DIR to a folder you can write"):
            records.begin("01_decision_boundaries")
    finally:
        (isolated_root / "ro").chmod(0o700)


def test_claim_ids_map_to_chapters():
    assert records.chapter_of("ch4.rtn-like-noise") == "04_post_training_quantization"
    with pytest.raises(ValueError, match="an id must look like 'ch<N>.<name>'"):
        records.chapter_of("ch99.x")


def test_a_prediction_is_recorded_whatever_its_outcome_and_never_stops_the_chapter(capsys):
    records.begin("02_input_perturbations")
    ok = predictions.predict("noise flips little", claims.below("flips", 0.01, 0.05, "theory: x"), id="ch2.p1",
                             hypothesis="H1", scope="digits")
    bad = predictions.predict("noise flips little", claims.below("flips", 0.2, 0.05, "theory: x"), id="ch2.p2",
                              hypothesis="H1")
    weak = predictions.predict("noise flips little", claims.below("flips", 0.0, 0.05, "theory: x"), id="ch2.p3",
                               hypothesis="H6", power=claims.above("PGD flips", 0.01, 0.5, "design: x"))
    assert (ok.outcome, bad.outcome, weak.outcome) == ("confirmed", "refuted", "untested")
    out = capsys.readouterr().out
    assert "▲ prediction confirmed [H1]" in out and "▼ prediction refuted [H1]" in out and "no power" in out
    assert bad.says(confirmed="yes", refuted="no") == "no" and weak.value("PGD flips") == 0.01
    assert [p["outcome"] for p in records.read_claims("02_input_perturbations", kind="predictions")] == [
        "confirmed", "refuted", "untested"]
    assert records.status(["02_input_perturbations"])[0]["state"] == "incomplete"  # not failed
    with pytest.raises(ValueError, match="hypothesis must be one of"):
        predictions.predict("s", claims.below("v", 0, 1, "theory: v"), id="ch2.p4", hypothesis="H7")
    with pytest.raises(TypeError, match="test must be a claims.Bound or a non-empty sequence"):
        predictions.predict("s", [], id="ch2.p4", hypothesis="H1")


def crafted(root, outcomes: dict[int, dict[str, str]]) -> None:
    """Records of chapters 1 and 2 at the given seeds: chapter 2 holds predictions with the given outcomes."""
    for chapter in ("01_decision_boundaries", "02_input_perturbations"):
        write_notebook(root, chapter)
    for seed, by_id in outcomes.items():
        config.use(seed=seed)
        records.begin("01_decision_boundaries")
        records.end()
        records.begin("02_input_perturbations")
        for pid, outcome in by_id.items():
            value = {"confirmed": 0.01, "refuted": 0.5, "untested": 0.0}[outcome]
            power = claims.above("attack flips", 0.0 if outcome == "untested" else 0.9, 0.5, "design: power")
            predictions.predict(f"{pid} holds", claims.below("flips", value, 0.05, "theory: small"), id=pid,
                                hypothesis="H1", power=power, scope=f"scope of {pid}")
        records.end()
    config.use(seed=0)


@pytest.mark.parametrize("outcomes, verdict", [
    ({0: {"ch2.a": "confirmed", "ch2.b": "confirmed"}, 1: {"ch2.a": "confirmed", "ch2.b": "confirmed"}}, "supported"),
    ({0: {"ch2.a": "refuted", "ch2.b": "refuted"}, 1: {"ch2.a": "refuted", "ch2.b": "refuted"}}, "refuted"),
    ({0: {"ch2.a": "confirmed", "ch2.b": "refuted"}, 1: {"ch2.a": "confirmed", "ch2.b": "refuted"}}, "mixed"),
    ({0: {"ch2.a": "confirmed"}, 1: {"ch2.a": "refuted"}}, "mixed"),
    ({0: {"ch2.a": "untested"}, 1: {"ch2.a": "untested"}}, "not tested at this scale"),
    ({0: {"ch2.a": "untested", "ch2.b": "refuted"}, 1: {"ch2.a": "untested", "ch2.b": "refuted"}}, "refuted"),
])
def test_the_verdict_engine_can_reach_every_verdict(isolated_root, outcomes, verdict):
    crafted(isolated_root, outcomes)
    chapters = ["01_decision_boundaries", "02_input_perturbations"]
    judged = evidence.judge("H1", seeds=(0, 1), chapters=chapters)
    assert judged.verdict == verdict
    assert evidence.judge("H2", seeds=(0, 1), chapters=chapters).verdict == "not tested at this scale"
    if verdict == "mixed" and len(outcomes[0]) == 2:
        assert judged.scope() == "holds: scope of ch2.a — fails: scope of ch2.b"
    assert all("over 2 seeds" in n for n in judged.numbers(0))


def test_the_verdict_is_unverified_while_a_chapter_is_stale(isolated_root):
    crafted(isolated_root, {0: {"ch2.a": "confirmed"}})
    write_notebook(isolated_root, "01_decision_boundaries", "x = 3")
    verdict = evidence.judge("H1", seeds=(0,), chapters=["01_decision_boundaries", "02_input_perturbations"])
    assert verdict.verdict == "unverified: run chapters/01_decision_boundaries.ipynb"
