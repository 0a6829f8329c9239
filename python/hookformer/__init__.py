"""hookformer from Python: a thin ctypes binding over include/hookformer.h with
TransformerLens's method names (docs/PYTHON.md)."""

from ._hooks import HookError, HookPoint, StopForward
from ._lib import HookformerError, lib as _clib
from .model import ActivationCache, Model, load
from .sae import SAE, TopContexts, load_sae
from .patching import (SweepResult, ablate, act_patch, dla, logit_lens, metric,
                       steering, steering_vector, sweep_names)
from .store import Store

__version__ = _clib.hk_version().decode()


def set_num_threads(n):
    """Threads of the kernels (0: the library's default), for every model of the process."""
    _clib.hk_set_num_threads(int(n))


__all__ = ["ActivationCache", "HookError", "HookPoint", "HookformerError", "Model", "SAE",
           "Store", "StopForward", "SweepResult", "TopContexts", "ablate", "act_patch", "dla",
           "load", "load_sae", "logit_lens", "metric", "set_num_threads", "steering",
           "steering_vector", "sweep_names"]
