"""The on-disk cache of refbilevel's ``njit`` loads a serial function that calls a parallel one
in a fresh process (docs/design.rst §Backends; refbilevel/backends/numba_jit.py).

The baselines' serial kernels call the oracle rows' parallel variant when there are enough
replicas. Loaded from the cache in a process that had run nothing parallel, such a kernel
used to jump to the threading layer's unresolved ``allocate_sched`` and segfault (exit
-11): PZOBO, MRBO, SABA and others crashed after some compile histories and "a stale cache"
was blamed. Three processes reproduce the history with two small functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

MODULE = textwrap.dedent("""
    from refbilevel.backends.numba_jit import njit, prange

    @njit(cache=True, parallel=True)
    def add_one_parallel(a):
        for i in prange(a.shape[0]):
            a[i] += 1.0

    @njit(cache=True)
    def add_one_serial_caller(a):
        add_one_parallel(a)
""")


def _call(tmp_path, name: str) -> subprocess.CompletedProcess:
    code = (f"import sys, numpy as np; sys.path.insert(0, {str(tmp_path)!r}); "
            f"import cache_probe; a = np.zeros(3); cache_probe.{name}(a); print(a.sum())")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_serial_caller_of_a_parallel_function_loads_from_the_cache(tmp_path):
    (tmp_path / "cache_probe.py").write_text(MODULE)
    # 1: only the parallel function is compiled and cached; 2: the serial caller is
    # compiled against the cached parallel one; 3: the serial caller is loaded from the
    # cache in a process that has started no threads (the case that segfaulted)
    for step, name in enumerate(("add_one_parallel", "add_one_serial_caller",
                                 "add_one_serial_caller"), start=1):
        done = _call(tmp_path, name)
        assert done.returncode == 0, (step, done.returncode, done.stderr[-2000:])
        assert done.stdout.strip() == "3.0", (step, done.stdout)
    assert any((tmp_path / "cache").rglob("*add_one_serial_caller*.nbi"))
