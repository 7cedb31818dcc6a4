"""A leaner daemon: pyroute2 without its package ``__init__``, one malloc arena.

``import pyroute2`` (or of any of its submodules) runs the package's
``__init__``, which imports every protocol family pyroute2 has (NDB with
sqlite3, IPDB, wireless, WireGuard, plan9 …): about 6 MB of RSS and 0.1 s
that the daemon never uses.  :func:`lean_pyroute2` puts an uninitialised
``pyroute2`` package module into ``sys.modules`` first: its submodules then
import as usual, and a name asked of the package itself (``from pyroute2
import IPRoute``) is taken from the submodule that defines it.  Any other
name runs the real ``__init__`` once, so code that wants the whole library
still gets it.

:func:`one_malloc_arena` keeps glibc from giving the kernel thread an arena
of its own (``MALLOC_ARENA_MAX=1``): libnftables' allocations then reuse the
heap the interpreter already has, ~0.5 MB less.  The two threads take turns
anyway (the interpreter lock).

:func:`no_gc_until_ready` and :func:`gc_after_start`: the cyclic garbage
collector stays off from ``mwan3 start`` until the first apply is done.  A
cold start allocates a few hundred thousand objects (the parsed config, the
compiled rules, the nft batch), almost none of them garbage, so the
collector ran ~460 times and took 0.1-0.24 s of the start for nothing (60
interfaces, 1,000 rules).  Once ready, one collection, then what the start
built is frozen (:func:`gc.freeze`), so later collections do not walk it.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt(3) parameter

# what mwan asks of the package, and where pyroute2 defines it
NAMES = {
    "IPRoute": "pyroute2.iproute.linux",
    "AsyncIPRoute": "pyroute2.iproute.linux",
    "NFCTSocket": "pyroute2.netlink.nfnetlink.nfctsocket",
    "NetlinkError": "pyroute2.netlink.exceptions",
}


def lean_pyroute2() -> bool:
    """Install the lean ``pyroute2`` package module; False if pyroute2 was already
    imported (or is not installed): then nothing changes."""
    if "pyroute2" in sys.modules:
        return False
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    package = importlib.util.module_from_spec(spec)  # __path__, __spec__ …; __init__ not run
    loader = spec.loader
    state = {"full": False}

    def getattr_(name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name != "__version__":
            raise AttributeError(name)
        where = NAMES.get(name)
        if where is not None:
            value = getattr(importlib.import_module(where), name)
            setattr(package, name, value)
            return value
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:  # a submodule
            return importlib.import_module(f"pyroute2.{name}")
        if not state["full"]:  # anything else: the whole library, as `import pyroute2` gives
            state["full"] = True
            loader.exec_module(package)
            if name in vars(package):
                return vars(package)[name]
        raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")

    package.__getattr__ = getattr_  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package
    return True


def one_malloc_arena() -> bool:
    """Ask glibc for a single malloc arena (before any thread starts); False elsewhere."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):  # not glibc
        return False


def no_gc_until_ready() -> None:
    """Turn the cyclic collector off for the start (see the module's text)."""
    gc.disable()


def gc_after_start() -> None:
    """Collect once, freeze what the start built, turn the collector back on."""
    gc.collect()
    gc.freeze()
    gc.enable()
