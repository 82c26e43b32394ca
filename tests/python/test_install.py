"""`pip install client/python` works offline into a fresh virtual
environment (Debian's msgpack and setuptools seen through
--system-site-packages), and the installed copy - not the source tree -
talks to a real tkvd."""

import os
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "client", "python")


def test_pip_install_and_use(server):
    with tempfile.TemporaryDirectory(prefix="tkv-pip-") as tmp:
        # pip builds in the directory it is given: build a copy, so the
        # source tree gets no build/ or egg-info.
        src = os.path.join(tmp, "src")
        shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                   "*.egg-info"))
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                       check=True)
        py = os.path.join(venv, "bin", "python")
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                        src], check=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
        shutil.rmtree(src)  # the installed copy must stand alone
        script = (
            "import sys, tkv\n"
            "assert tkv.__file__.startswith(sys.prefix), tkv.__file__\n"
            f"c = tkv.Client('127.0.0.1', {server.port}, timeout=10)\n"
            "assert c.put('installed', 'yes', ts=7) == 7\n"
            "print(c.get('installed', ts=8).value.decode(), tkv.__version__)\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run([py, "-c", script], cwd=tmp, env=env, check=True,
                             capture_output=True, text=True).stdout
        assert out == "yes 0.1.0\n"
