"""The two Jupyter front ends of the live test, each served on 127.0.0.1 by a server of its own.

- ``lab``: JupyterLab from the book's environment (the interpreter running the tests): ipywidgets 8.
- ``classic``: the classic Notebook 6.5 with ipywidgets 7.7.1 and IPython 7.34, the closest front end to
  Colab's. It runs from a small virtual environment of its own, created on first use (about 20 s, from
  PyPI) under ``~/.cache/fragile-yet-robust/`` (or ``$BOOK_CLASSIC_VENV``): only the Jupyter packages are
  installed there; a ``.pth`` file adds the book's environment after them (torch, numpy, matplotlib and the
  book's ``utils``), so its ipywidgets 7.7.1 shadows the book's ipywidgets 8.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLASSIC_PACKAGES = (  # Colab's front-end side: ipywidgets 7.7.1 (8 is unsupported there), IPython 7.34
    "notebook==6.5.7", "ipywidgets==7.7.1", "widgetsnbextension==3.6.10", "ipykernel==6.29.5", "ipython==7.34.0",
    "jupyter_client==7.4.9",
)
STAMP = "book-frontend-env.json"


def classic_venv_dir() -> Path:
    return Path(os.environ.get("BOOK_CLASSIC_VENV") or Path.home() / ".cache" / "fragile-yet-robust" /
                "frontend-classic-venv").expanduser()


def classic_python(say=print) -> Path:
    """The classic-Notebook environment's interpreter, creating the environment if it is missing or was made
    for other packages or another book environment; ``say`` reports what is being done."""
    venv = classic_venv_dir()
    python = venv / "bin" / "python"
    book_site = sysconfig.get_paths()["purelib"]  # the book's environment: torch, numpy, utils, …
    wanted = {"packages": list(CLASSIC_PACKAGES), "python": sys.version.split()[0], "book_site_packages": book_site}
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creation at a time
        with contextlib.suppress(OSError, ValueError):
            if python.is_file() and json.loads((venv / STAMP).read_text()) == wanted:
                return python
        if venv.exists():
            if not ((venv / STAMP).is_file() or (venv / "pyvenv.cfg").is_file()):
                raise RuntimeError(f"{venv} exists and is not a virtual environment: set BOOK_CLASSIC_VENV elsewhere")
            shutil.rmtree(venv)
        say(f"[frontend] creating the classic-Notebook environment in {venv} (one time, about 20 s; from PyPI): "
            f"{' '.join(CLASSIC_PACKAGES)}, with the book's environment {book_site} after it on sys.path")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               *CLASSIC_PACKAGES], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip could not install the classic-Notebook environment in {venv}:\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        # addsitedir (not a bare path line) also runs the book environment's own .pth files: its editable
        # install of utils; appended, so this environment's ipywidgets 7 comes first
        Path(purelib, "zz-book-environment.pth").write_text(f"import site; site.addsitedir({book_site!r})\n")
        (venv / STAMP).write_text(json.dumps(wanted, indent=1))
        say(f"[frontend] classic-Notebook environment ready in {time.perf_counter() - start:.0f} s")
        return python


def versions(python: Path | str) -> dict[str, str]:
    """The versions a front end's server and kernel run with."""
    code = ("import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
            "for name in ('jupyterlab', 'notebook', 'jupyter_server', 'ipywidgets', 'widgetsnbextension', "
            "'jupyterlab_widgets', 'ipykernel', 'ipython', 'jupyter_client', 'traitlets', 'torch', 'numpy', "
            "'matplotlib'):\n"
            "    try:\n        out[name] = m.version(name)\n    except m.PackageNotFoundError:\n        pass\n"
            "print(json.dumps(out))")
    return json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    base: str  # http://127.0.0.1:<port>/
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kernel_state(self, notebook: str) -> str | None:
        """The execution state of the kernel of ``notebook``'s session (``idle``, ``busy``, …), None if none."""
        with urllib.request.urlopen(self.url("api/sessions"), timeout=5) as response:
            sessions = json.load(response)
        for s in sessions:
            if Path(s.get("path") or s.get("notebook", {}).get("path", "")).name == notebook and s.get("kernel"):
                return s["kernel"].get("execution_state")
        return None


LAB_SETTINGS = {  # no news or update checks (nothing outside 127.0.0.1 is reachable), every cell in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@contextlib.contextmanager
def jupyter_server(kind: str, python: Path | str, workdir: Path, state: Path, env: dict[str, str],
                   timeout: float = 90):
    """Run ``kind`` (``lab`` or ``classic``) with ``python`` on a free port of 127.0.0.1, serving ``workdir``,
    with Jupyter's own folders under ``state`` and ``env`` for the server and its kernels; yields a
    :class:`Server` once it answers, and stops it (and its kernels) afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    dirs = {"JUPYTER_CONFIG_DIR": state / "config", "JUPYTER_DATA_DIR": state / "data",
            "JUPYTER_RUNTIME_DIR": state / "runtime", "JUPYTERLAB_SETTINGS_DIR": state / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": state / "lab-workspaces", "IPYTHONDIR": state / "ipython",
            "MPLCONFIGDIR": state / "matplotlib"}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    for name, settings in LAB_SETTINGS.items():
        (dirs["JUPYTERLAB_SETTINGS_DIR"] / name).parent.mkdir(parents=True, exist_ok=True)
        (dirs["JUPYTERLAB_SETTINGS_DIR"] / name).write_text(json.dumps(settings))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHONPATH", "VIRTUAL_ENV"))}
    full_env |= {k: str(v) for k, v in dirs.items()} | env
    if kind == "lab":
        app, cmd = "ServerApp", [str(python), "-m", "jupyterlab", f"--IdentityProvider.token={token}",
                                 f"--ServerApp.root_dir={workdir}"]
    elif kind == "classic":
        app, cmd = "NotebookApp", [str(python), "-m", "notebook", f"--NotebookApp.token={token}",
                                   f"--NotebookApp.notebook_dir={workdir}"]
    else:
        raise ValueError(f"kind must be 'lab' or 'classic', got {kind!r}")
    cmd += ["--no-browser", "--allow-root", f"--{app}.ip=127.0.0.1", f"--{app}.port={port}",
            f"--{app}.port_retries=0"]
    log = state / f"{kind}-server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{port}/", token, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {process.returncode}:\n{server.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(server.url("api/status"), timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not answer in {timeout:.0f} s:\n{server.log_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group, started for it)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # kernels left behind in the group
        os.killpg(process.pid, signal.SIGKILL)
