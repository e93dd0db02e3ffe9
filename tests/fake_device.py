"""An array module that is NumPy under another identity, for testing the device code path
without a GPU: ``problem.on(FAKE_DEVICE)`` takes the moved-problem path (parameters converted
by this module's ``asarray``, inputs not re-validated) exactly as ``problem.on(cupy)`` does,
and every array that went through ``asarray`` is marked, so a test can see that a problem's
parameters were moved."""

import types

import numpy as np


class MovedArray(np.ndarray):
    """An array converted by FAKE_DEVICE.asarray (ufuncs keep the subclass)."""


class _FakeDevice(types.ModuleType):
    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def asarray(a, dtype=None):
        return np.asarray(a, dtype=dtype).view(MovedArray)


FAKE_DEVICE = _FakeDevice("fake_device")
