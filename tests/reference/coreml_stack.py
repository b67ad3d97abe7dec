"""The Core ML scripts' interpreter check (no heavy imports: call it before importing coremltools or torch).

regen.sh runs every make_*.py with the reference interpreter, which has no coremltools: a Core ML script then
re-executes itself under $SDPAL_COREML_PYTHON (tests/reference/requirements-coreml.txt) when that is set, and
otherwise says it is skipped and exits 0.
"""
import os
import sys

COREMLTOOLS = "8.1"
TORCH = "2.4.0"


def _stack_ok(need_torch):
    try:
        import coremltools
    except ImportError:
        return False
    if coremltools.__version__ != COREMLTOOLS:
        return False
    if not need_torch:
        return True
    try:
        import torch
    except ImportError:
        return False
    return torch.__version__.split("+")[0] == TORCH


def require(script, need_torch=True):
    """Returns when this interpreter has coremltools 8.1 (and torch 2.4.0 when need_torch); else re-executes the
    running script under $SDPAL_COREML_PYTHON once, or prints that `script` is skipped and exits 0."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if _stack_ok(need_torch):
        return
    alt = os.environ.get("SDPAL_COREML_PYTHON")
    if alt and not os.environ.get("SDPAL_COREML_REEXEC"):
        os.environ["SDPAL_COREML_REEXEC"] = "1"
        os.execv(alt, [alt] + sys.argv)
    stack = f"torch {TORCH}, coremltools {COREMLTOOLS}" if need_torch else f"coremltools {COREMLTOOLS}"
    print(f"{script}: skipped: needs the stack in tests/reference/requirements-coreml.txt ({stack}); "
          "run it with that interpreter or set SDPAL_COREML_PYTHON to it")
    sys.exit(0)
