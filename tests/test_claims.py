import json

import numpy as np
import pytest

from utils import claims


def test_a_claim_that_holds_is_printed_and_recorded(isolated_root, capsys):
    claims.begin_chapter("01_test")
    claims.claim("two is more than one", np.bool_(2 > 1), {"two": np.float32(2.0), "n": np.int64(3)}, hypotheses=["H5"])
    out = capsys.readouterr().out
    assert "✔ verified [H5] two is more than one" in out and "two = 2; n = 3" in out
    (record,) = claims.read_claims("01_test")
    assert record["holds"] and record["evidence"] == {"two": 2.0, "n": 3} and record["chapter"] == "01_test"


def test_a_failed_claim_raises_and_is_recorded_as_failed():
    claims.begin_chapter("02_test")
    with pytest.raises(claims.ClaimFailed, match="does NOT hold; evidence: x = 1"):
        claims.claim("x is large", False, {"x": 1})
    assert claims.read_claims("02_test")[0]["holds"] is False


def test_records_become_stale_when_the_chapter_code_or_scale_changes(isolated_root, monkeypatch):
    folder = isolated_root / "chapters"
    folder.mkdir()
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "03_test.ipynb").write_text(json.dumps(nb))
    claims.begin_chapter("03_test")
    claims.claim("fresh", True, "evidence")
    assert not claims.read_claims("03_test")[0]["stale"]
    nb["cells"][0]["source"] = ["x = 2"]
    (folder / "03_test.ipynb").write_text(json.dumps(nb))
    assert claims.read_claims("03_test")[0]["stale"]
    nb["cells"][0]["source"] = ["x = 1"]
    (folder / "03_test.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(claims.config, "SCALE", "full")
    assert claims.read_claims()[0]["stale"]


def test_missing_records_say_which_chapter_to_run():
    with pytest.raises(FileNotFoundError, match="run chapters/04_nothing.ipynb first"):
        claims.read_claims("04_nothing")


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="unknown hypotheses \\['H9'\\]"):
        claims.claim("s", True, "e", hypotheses=["H9"])
    with pytest.raises(ValueError, match="statement must be a non-empty string"):
        claims.claim("  ", True, "e")
    with pytest.raises(TypeError, match="evidence must be a mapping or a string"):
        claims.claim("s", True, 3.0)
    with pytest.raises(TypeError, match="holds must be a single truth value"):
        claims.claim("s", np.array([True, False]), "e")
    with pytest.raises(ValueError, match="chapter must be a name"):
        claims.begin_chapter("../evil")


def test_status_and_find_report_missing_stale_and_fresh_records(isolated_root):
    (isolated_root / "chapters").mkdir()
    (isolated_root / "chapters" / "02_demo.ipynb").write_text(json.dumps({"cells": []}))
    claims.begin_chapter("02_demo")
    claims.claim("Noise flips few predictions", True, {"flip rate": 0.01})
    rows = {r["chapter"]: r for r in claims.status(["02_demo", "03_absent"])}
    assert rows["02_demo"]["action"] == "ok" and rows["02_demo"]["claims"] == 1
    assert rows["03_absent"]["action"] == "run chapters/03_absent.ipynb" and not rows["03_absent"]["recorded"]
    assert claims.find("02_demo", "Noise flips")["evidence"] == {"flip rate": 0.01}
    assert claims.find("02_demo", "Attacks") is None and claims.find("03_absent", "x") is None
    (isolated_root / "chapters" / "02_demo.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ["print(1)"]}]}))
    assert claims.status(["02_demo"])[0]["stale"] and claims.find("02_demo", "Noise flips") is None
