"""The book on a course's shared machine: an instructor fills the model cache once, students read it; a
read-only cache is used as it is; a group-writable one is shared and repaired; and the book runs from a
read-only copy of the repository when its settings move every folder it writes (``config.OUTPUTS``).

File permissions need two accounts, and root ignores permissions (CI runs as root). As root these tests
create a second account (``useradd``) to own the instructor's files and act as the student with it
(``runuser``) when that account can run this Python. Where it cannot — the interpreter lies in a folder only
root may enter, as ``/root/.pyenv`` — the student is root *without* the capabilities that bypass file
permissions (``setpriv --bounding-set -dac_override,-dac_read_search,-fowner``): to the kernel's checks, that
process is simply another user than the owner of the instructor's files. A probe checks that the student
really cannot read an instructor's private file before any test relies on it. Not as root, they skip.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import torch

from utils import checkpoints, config, train
from utils.data import load_dataset
from utils.models import build_model

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "train.Recipe(epochs=2, lr=1e-2, batch_size=100)"
CAPS = "--bounding-set=-dac_override,-dac_read_search,-fowner"


@dataclass
class Accounts:
    """How to run a command as the student, and who owns the instructor's files."""

    how: str
    prefix: list[str]
    student: tuple[int, int]  # uid, gid of the student's process
    instructor: tuple[int, int]  # uid, gid owning the instructor's files; the gid is the course's group

    def run(self, args: list[str], *, env: dict, cwd: Path, in_group: bool = False, timeout: int = 300):
        """``args`` as the student (in the course's group if ``in_group``), with only ``env`` set."""
        prefix = self.prefix  # with runuser, the course's group is the student account's own group
        if in_group and self.prefix[0] == "setpriv":
            prefix = ["setpriv", f"--groups={self.instructor[1]}", *self.prefix[1:]]
        return subprocess.run([*prefix, *args], env={"PATH": os.environ["PATH"], **env}, cwd=cwd, text=True,
                              capture_output=True, timeout=timeout)


def chown_tree(path: Path, owner: tuple[int, int]) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, *owner, follow_symlinks=False)


@pytest.fixture(scope="module")
def shared():
    """A world-searchable scratch folder that both accounts can reach (pytest's own is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="fyr-shared-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["chmod", "-R", "u+w", str(folder)], check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def accounts(shared):
    if os.geteuid() != 0:
        pytest.skip("permission tests need root, to act as a second account (CI runs as root); as another user, "
                    "the permission checks of the cache are covered by tests/test_train.py only")
    name, created = f"fyr-{os.getpid()}", False
    if shutil.which("useradd"):
        created = subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], capture_output=True
                                 ).returncode == 0
    other = (pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid) if created else (54321, 54321)
    probe = shared / "probe"
    probe.write_text("private")
    probe.chmod(0o600)
    candidates = []
    if created and shutil.which("runuser"):
        candidates.append(Accounts(f"the account {name} (useradd, runuser)", ["runuser", "-m", "-u", name, "--"], other,
                                   (0, other[1])))
    if shutil.which("setpriv"):
        candidates.append(Accounts(f"root without the permission-bypassing capabilities; files owned by {other}",
                                   ["setpriv", CAPS, "--inh-caps=-all", "--"], (0, 0), other))
    chosen = None
    for acc in candidates:
        os.chown(probe, *acc.instructor)
        runs = acc.run([sys.executable, "-c", "import utils"], env={}, cwd=shared)
        private = acc.run(["cat", str(probe)], env={}, cwd=shared)
        if runs.returncode == 0 and private.returncode != 0:
            chosen = acc
            break
    if chosen is not None:
        yield chosen
    if created:
        subprocess.run(["userdel", name], capture_output=True)
    if chosen is None:
        pytest.skip("cannot act as a second account here: neither runuser nor setpriv gave a process that root's "
                    "private files are closed to and that can run this Python")


STUDENT = f"""
import json, os, sys, warnings
os.umask(int(sys.argv[1], 8))
from utils import train
calls = []
real = train.fit
train.fit = lambda *a, **k: calls.append(1) or real(*a, **k)
R = {RECIPE}
out = []
for model, data, seed in json.loads(sys.argv[2]):
    before = len(calls)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train.pretrained(model, data, seed=seed, recipe=R, progress=False)
    out.append({{"trained": len(calls) - before, "warnings": [str(x.message) for x in w
                                                            if issubclass(x.category, UserWarning)]}})
print("RESULT" + json.dumps(out))
"""


def student_env(shared: Path, acc: Accounts, **settings: str) -> dict:
    home = shared / f"home-{acc.student[0]}"
    home.mkdir(exist_ok=True)
    os.chown(home, *acc.student)
    return {"HOME": str(home), "MPLCONFIGDIR": str(home / "mpl"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TQDM_DISABLE": "1", "BOOK_SEED": "0", **settings}


def as_student(acc: Accounts, shared: Path, cache: Path, calls: list, *, umask: str, in_group: bool = False):
    env = student_env(shared, acc, BOOK_CHECKPOINTS=str(cache), BOOK_ROOT=str(shared))
    done = acc.run([sys.executable, "-c", STUDENT, umask, json.dumps(calls)], env=env, cwd=shared, in_group=in_group)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT")[-1])


def fill_cache(cache: Path, entries: list) -> dict:
    """The instructor's side (this process, umask 022): train and cache ``entries``; their files by entry."""
    recipe = train.Recipe(epochs=2, lr=1e-2, batch_size=100)
    previous = os.umask(0o022)
    try:
        before = set(cache.glob("*.pt")) if cache.exists() else set()
        files = {}
        for model, data, seed in entries:
            train.pretrained(model, data, seed=seed, recipe=recipe, progress=False, root=cache)
            (files[model, data, seed],) = set(cache.glob("*.pt")) - before - set(files.values())
        return files
    finally:
        os.umask(previous)


def test_a_read_only_cache_filled_by_the_instructor_is_used_as_it_is(accounts, shared):
    cache = shared / "cache-read-only"
    files = fill_cache(cache, [("mlp", "moons", 0), ("linear", "moons", 0)])
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in files.values())  # not a temporary file's 0600
    files["linear", "moons", 0].write_bytes(b"damaged")  # a damaged entry the students cannot repair
    chown_tree(cache, accounts.instructor)
    cache.chmod(0o755)
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    got = as_student(accounts, shared, cache, [["mlp", "moons", 0], ["linear", "moons", 0], ["mlp", "moons", 1],
                                               ["mlp", "circles", 0]], umask="022")
    assert got[0] == {"trained": 0, "warnings": []}, (accounts.how, got[0])  # loaded, not retrained
    assert got[1]["trained"] == 1 and len(got[1]["warnings"]) == 1, got[1]
    assert "unusable" in got[1]["warnings"][0] and "BOOK_CHECKPOINTS" in got[1]["warnings"][0]
    assert got[2]["trained"] == 1 and len(got[2]["warnings"]) == 1 and "BOOK_CHECKPOINTS" in got[2]["warnings"][0]
    assert got[3] == {"trained": 1, "warnings": []}  # one warning per folder, not one per model
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before  # never rewritten


def test_a_group_writable_cache_is_shared_and_repaired_by_any_member(accounts, shared):
    cache = shared / "cache-group"
    files = fill_cache(cache, [("mlp", "moons", 0), ("linear", "moons", 0)])
    files["linear", "moons", 0].write_bytes(b"damaged")
    chown_tree(cache, accounts.instructor)
    cache.chmod(0o2775)  # the course's group may write; new files join the folder's group (setgid)
    got = as_student(accounts, shared, cache, [["mlp", "moons", 0], ["linear", "moons", 0], ["linear", "moons", 0],
                                               ["mlp", "moons", 1]], umask="002", in_group=True)
    assert got[0] == {"trained": 0, "warnings": []}, (accounts.how, got[0])
    assert got[1]["trained"] == 1 and len(got[1]["warnings"]) == 1 and "replacing them" in got[1]["warnings"][0]
    assert got[2] == {"trained": 0, "warnings": []}  # repaired by the student, loaded on the next call
    assert got[3] == {"trained": 1, "warnings": []}
    new = [p for p in cache.glob("*.pt") if p.stat().st_uid == accounts.student[0] and p not in files.values()]
    repaired = files["linear", "moons", 0]
    for p in (*new, repaired):
        assert p.stat().st_mode & 0o777 == 0o664 and p.stat().st_gid == accounts.instructor[1], p
    assert len(new) == 1 and checkpoints.read(repaired, torch.load(repaired, weights_only=True)["key"],
                                              build_model("linear", load_dataset("moons"))) is not None


def read_only_copy(shared: Path, owner: tuple[int, int]) -> Path:
    """The repository without its environment, data and history, chapter 1 cut to test sizes, read-only."""
    top = {".venv", "data", ".git", "_build", ".ruff_cache", ".pytest_cache"}
    copy = shared / "book"
    shutil.copytree(ROOT, copy, ignore=lambda d, names: [n for n in names if (Path(d) == ROOT and n in top)
                                                         or n == "__pycache__" or n.endswith(".egg-info")])
    path = copy / "chapters" / "01_decision_boundaries.ipynb"
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        'SIZES["small"].update(dims=[2, 16, 32], n_points=16, n_directions=4)  # injected: test sizes'))
    nbformat.write(nb, path)
    chown_tree(copy, owner)
    subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
    return copy


DEFAULTS = """
import warnings
from utils import config, data, train
try:
    config.output_dir("onnx", writable=True)
except PermissionError as err:
    print("ONNX:", err)
try:
    data.load_dataset("mnist")
except data.DatasetUnavailableError as err:
    print("DATA:", err)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    train.pretrained("linear", "moons", recipe=train.Recipe(epochs=1, lr=1e-2), progress=False)
print("CHECKPOINTS:", *[str(x.message) for x in w])
"""


def test_the_book_runs_from_a_read_only_copy_with_its_folders_moved_by_the_settings(accounts, shared):
    """Chapter 1 at test sizes runs top to bottom (tools/run_chapters.py --discard) from a read-only copy of
    the repository, as the student, with BOOK_CHECKPOINTS, BOOK_CLAIMS_DIR, BOOK_DATA and BOOK_ONNX pointing
    elsewhere; without the settings, each folder's failure names its setting. About 40 s on 2 cores."""
    copy = read_only_copy(shared, accounts.instructor)
    out = shared / "outputs"
    out.mkdir()
    settings = {setting: str(out / kind) for kind, (setting, _) in config.OUTPUTS.items()}
    env = student_env(shared, accounts, PYTHONPATH=str(copy), BOOK_CLAIMS="record-only", IPYTHONDIR=str(out / "ipy"),
                      JUPYTER_RUNTIME_DIR=str(out / "jupyter"), **settings)
    chown_tree(out, accounts.student)
    done = accounts.run([sys.executable, str(copy / "tools" / "run_chapters.py"), "--discard",
                         str(copy / "chapters" / "01_decision_boundaries.ipynb")], env=env, cwd=copy / "chapters")
    assert done.returncode == 0 and "failed: none" in done.stdout, (accounts.how, done.stdout[-3000:],
                                                                   done.stderr[-3000:])
    assert list((out / "checkpoints").glob("*.pt")) and list((out / "claims").rglob("01_decision_boundaries.json"))
    defaults = {k: v for k, v in env.items() if not k.startswith("BOOK_")}
    told = accounts.run([sys.executable, "-c", DEFAULTS], env=defaults, cwd=copy / "chapters")
    assert told.returncode == 0, told.stderr[-3000:]
    for setting in ("BOOK_ONNX", "BOOK_DATA", "BOOK_CHECKPOINTS"):
        assert setting in told.stdout, (setting, told.stdout)
