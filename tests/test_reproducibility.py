"""The committed claim records (``data/claims/small/seed-*``) back the book's claims as findings: every claim
held at every recorded seed, the records come from the chapters' current code, and every limit set from
the seeds keeps the margin :mod:`utils.reproducibility` states. The reproducibility appendix shows the same
table; this test fails when a change to a chapter or a threshold has not been replicated."""

from pathlib import Path

import pytest

from utils import records, reproducibility

ROOT = Path(__file__).resolve().parents[1]
SEEDS = tuple(range(10))


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(ROOT))  # the chapters' code, for the records' fingerprints
    return reproducibility.table(SEEDS, root=ROOT / records.COMMITTED_DIR)


def test_every_chapter_is_recorded_at_every_seed(monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(ROOT))
    for seed in SEEDS:
        for chapter in records.CHAPTERS:
            path = records.record_path(chapter, seed=seed, root=ROOT / records.COMMITTED_DIR)
            record = records.read_record(path)
            assert record["status"] == "complete", f"{path}: status {record['status']}"
            assert (record["scale"], record["seed"]) == ("small", seed), path


def test_every_claim_held_at_every_seed(table):
    failed = table[table["held at seeds"] != f"{len(SEEDS)} of {len(SEEDS)}"]
    assert failed.empty, f"claims that did not hold at some seed:\n{failed[['claim', 'held at seeds']]}"


def test_records_come_from_the_current_code(table):
    stale = table[table["stale"]]["claim"].unique()
    assert not len(stale), f"records older than their chapter's code (re-run tools/seed_sweep.py): {list(stale)}"


def test_seeds_based_limits_keep_the_margin(table):
    short = table[~table["margin met"]]
    assert short.empty, (f"bounds whose limit is inside the rule ({reproducibility.MARGIN_RULE}):\n"
                         f"{short[['claim', 'bound', 'limit', 'observed', 'gap / required margin']]}")

