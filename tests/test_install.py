"""A read-only install, used by someone whose home cannot be written (the usual container): the
import, rendering and parsing work, numba's compiled kernels going to a private temporary folder
or, when nothing can be written anywhere, compiled in memory.

The install is made as an installer lays it out: the package's files copied into a fresh venv's
site-packages and byte-compiled (``__pycache__`` present), the dependencies reached through a
``.pth`` file naming this interpreter's site-packages (so it works offline, whatever the build
backend's version here), then every write bit removed. The child runs as root without the
capabilities that bypass file modes (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``,
``CAP_FOWNER``): another user could not run this interpreter at all when it lives under a home
of mode 0700, as pyenv's does. Each child checks first that it cannot write the install.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from harmony_np import vocab as V

ROOT = Path(__file__).resolve().parents[1]

# The work both the child and this process do; the child's results must equal ours.
_WORK = '''
def work(h):
    from harmony_np.parse import SCAN_KERNEL_MIN

    enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    M, R = h.Message, h.Role
    conv = h.Conversation.from_messages(
        [M.from_role_and_content(R.SYSTEM, "Be brief."), M.from_role_and_content(R.USER, "What is two plus two? " * 30)]
    )
    answer = h.Conversation.from_messages(
        [
            M.from_role_and_content(R.ASSISTANT, "thinking it over " * 120).with_channel("analysis"),
            M.from_role_and_content(R.ASSISTANT, "It is four. " * 40).with_channel("final"),
        ]
    )
    prompt = enc.render_conversation_for_completion(conv, R.ASSISTANT)
    completion = enc.render_conversation(answer, h.RenderConversationConfig(auto_drop_analysis=False))
    assert len(completion) > 2 * SCAN_KERNEL_MIN  # parsed by the scanning kernel
    short = enc.render_conversation(h.Conversation.from_messages([M.from_role_and_content(R.ASSISTANT, "Four.")]))
    rows = enc.render_batch([conv, answer, conv])
    table = enc.parse_batch([completion, short, completion])
    return {
        "prompt": prompt,
        "text": enc.decode_utf8(prompt),
        "parsed": [m.to_dict() for m in enc.parse_messages_from_completion_tokens(completion)],
        "rows": [rows[i].tolist() for i in range(len(rows))],
        "table": [[m.to_dict() for m in ms] for ms in table.to_messages()],
    }
'''

_CHILD = '''
import json, os, sys
import harmony_np as h

site_dir = sys.argv[1]
assert h.__file__.startswith(site_dir), h.__file__
try:  # the test means nothing if this process could write the install
    open(os.path.join(site_dir, "harmony_np", "probe"), "w").close()
except OSError:
    pass
else:
    sys.exit("the install is writable by the child")
ns = {}
exec(sys.argv[2], ns)
print(json.dumps(ns["work"](h)))
'''

# Runs argv[1:] without the capabilities that let root ignore file modes.
_DROP_CAPS = '''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.argv[1], sys.argv[1:])
'''


def _expected(hnp) -> dict:
    ns: dict = {}
    exec(_WORK, ns)
    return json.loads(json.dumps(ns["work"](hnp)))


def _read_only(path: Path) -> None:
    for folder, dirs, files in os.walk(path):
        for name in files + dirs:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & ~0o222)
    os.chmod(path, os.stat(path).st_mode & ~0o222)


@pytest.fixture(scope="module")
def install():
    """``(base, python, site-packages)`` of a read-only install in a fresh venv."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux (to drop the capabilities that bypass file modes)")
    base = Path(tempfile.mkdtemp(prefix="harmony_np-install-"))
    try:
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        (site_dir,) = (venv / "lib").glob("python*/site-packages")
        pkg = site_dir / "harmony_np"
        pkg.mkdir()
        for src in (ROOT / "harmony_np").iterdir():  # what setuptools packages: modules, py.typed
            if src.suffix == ".py" or src.name == "py.typed":
                shutil.copy2(src, pkg / src.name)
        assert compileall.compile_dir(str(pkg), quiet=1)
        (site_dir / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        _read_only(venv)
        home = base / "home"
        home.mkdir()
        os.chmod(home, 0o555)
        yield base, venv / "bin" / "python", site_dir
    finally:
        for folder, dirs, _ in os.walk(base):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _run(install, tmpdir: Path | None, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    base, python, site_dir = install
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base / "home"), "LANG": "C.UTF-8"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    cmd = [sys.executable, "-I", "-c", _DROP_CAPS, str(python), "-c", _CHILD, str(site_dir), _WORK]
    return subprocess.run((wrap or []) + cmd, capture_output=True, text=True, env=env, cwd=str(base / "home"), timeout=300)


@pytest.mark.slow
def test_read_only_install_caches_in_a_private_temp_folder(install, hnp):
    # numba found no place to cache (no writable __pycache__ nor home): the import failed with
    # "cannot cache function '_copy_tokens': no locator available"
    base = install[0]
    tmpdir = base / "tmp"
    tmpdir.mkdir(exist_ok=True)
    expected = _expected(hnp)
    r = _run(install, tmpdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == expected
    private = tmpdir / "harmony_np-0"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert list((private / "numba").rglob("kernels.*.nbi")), "no kernel was cached"
    assert list(private.glob("o200k-*-flat.npy")), "the byte table was not cached"
    # the next process loads both from there
    r = _run(install, tmpdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == expected


@pytest.mark.slow
def test_read_only_install_with_nothing_writable_compiles_in_memory(install, hnp):
    # /tmp and /var/tmp read-only too (in a mount namespace of the child's own): no cache at all
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a mount namespace")
    mounts = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in ("/tmp", "/var/tmp"))
    probe = subprocess.run(["unshare", "-m", "sh", "-c", mounts], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only /tmp in a mount namespace here: {probe.stderr.strip()}")
    r = _run(install, None, ["unshare", "-m", "sh", "-c", mounts + ' && exec "$@"', "sh"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == _expected(hnp)


def test_private_temp_folder_refuses_one_it_does_not_own_alone(tmp_path, monkeypatch):
    # another user may make <tmp>/harmony_np-<uid> first, to plant a byte table or compiled code
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX only")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("HARMONY_NP_CACHE_DIR", str(tmp_path / "unwritable" / "x"))
    (tmp_path / "unwritable").write_text("a file, so no folder can be made under it")
    folder = tmp_path / f"harmony_np-{os.geteuid()}"
    assert V.writable_cache_folder("numba") == folder / "numba"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    os.chmod(folder, 0o777)  # open to all: refused
    assert V.writable_cache_folder("numba") is None
    shutil.rmtree(folder)
    folder.symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a link: refused
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    assert V.writable_cache_folder("numba") is None


def test_byte_table_cache_falls_back_to_the_private_temp_folder(tmp_path):
    # the home's cache cannot be written: the table goes to the private folder and is read
    # back from there by the next process
    code = textwrap.dedent(
        """
        import harmony_np.vocab as V
        v = V.load_vocabulary()
        print(v.token_bytes(24912).decode())
        """
    )
    (tmp_path / "home").write_text("not a folder")
    env = dict(os.environ, HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path))
    for k in ("HARMONY_NP_CACHE_DIR", "XDG_CACHE_HOME", "TIKTOKEN_ENCODINGS_BASE"):
        env.pop(k, None)
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "hello"
    assert list((tmp_path / f"harmony_np-{os.geteuid()}").glob("o200k-*-flat.npy"))
