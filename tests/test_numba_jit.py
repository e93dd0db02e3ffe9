"""refbilevel.backends.numba_jit: the on-disk Numba cache is invalidated by a change to any
of the package's Numba sources, not only the kernel's own file (Numba's default)."""

import re
from pathlib import Path

import pytest

pytest.importorskip("numba")

from refbilevel.backends import numba_jit  # noqa: E402

PACKAGE = Path(numba_jit.__file__).resolve().parents[1]


def test_every_compiled_module_takes_njit_from_numba_jit():
    """A kernel decorated with numba's own njit would escape the digest-stamped cache."""
    direct = re.compile(r"^\s*(from numba import|import numba\b)", re.M)
    offenders = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                 if p.name != "numba_jit.py" and "@njit" in p.read_text()
                 and direct.search(p.read_text())]
    assert offenders == []


def test_kernels_use_the_package_digest_locator():
    from refbilevel.algorithms.soba_numba import soba_kernel

    locator = soba_kernel._cache._impl.locator
    assert isinstance(locator, numba_jit.PackageDigestLocator)
    assert locator.get_source_stamp()[1] == numba_jit.numba_sources_digest()


def test_digest_follows_numba_files_only(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    kernel = tmp_path / "sub" / "k.py"
    helper = tmp_path / "h.py"
    plain = tmp_path / "plain.py"
    kernel.write_text("from refbilevel.backends.numba_jit import njit\n")
    helper.write_text("# numba helper\nX = 1\n")
    plain.write_text("Y = 1\n")
    monkeypatch.setattr(numba_jit, "PACKAGE_ROOT", tmp_path)

    def digest():
        numba_jit.numba_sources_digest.cache_clear()
        return numba_jit.numba_sources_digest()

    try:
        d0 = digest()
        plain.write_text("Y = 2\n")
        assert digest() == d0  # a file without Numba code does not invalidate kernels
        helper.write_text("# numba helper\nX = 2\n")
        d1 = digest()
        assert d1 != d0  # an edited helper in another file does
        kernel.rename(tmp_path / "k.py")
        assert digest() != d1  # so does moving a kernel
    finally:
        numba_jit.numba_sources_digest.cache_clear()
