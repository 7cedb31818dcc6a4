"""Shared fixtures.

Lab tests (``@pytest.mark.lab``) get a fresh network-namespace lab from the
``lab`` fixture, or several from ``make_lab``; both skip with the reason
when labs cannot be built here (not root, no netns) and always tear down.

    @pytest.mark.lab
    @pytest.mark.parametrize("lab", [{"isps": 3, "clients": 2}], indirect=True)
    def test_something(lab): ...
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mwan.lab import Lab, cleanup_stale
from mwan.lab.router import MwanRouter

_GROUPS_BEFORE: set[str] = set()


def _mwan_groups() -> set[str]:
    from mwan.kernel import cgroups

    m = cgroups.first_mount(cgroups.cgroup2_mounts())
    if m is None or not os.path.isdir(m.point):
        return set()
    return {os.path.join(m.point, d) for d in os.listdir(m.point) if d.startswith("mwan-")}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove namespaces left behind by labs of earlier, crashed runs."""
    # daemons the tests start keep per-WAN usage here, not in the host's /var/lib/mwan
    os.environ.setdefault("MWAN_STATE_DIR", tempfile.mkdtemp(prefix="mwan-test-state-"))
    if os.geteuid() == 0:
        cleanup_stale()
        _GROUPS_BEFORE.update(_mwan_groups())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A daemon that died with its lab cannot remove its `mwan3 use` cgroups: do it here."""
    if os.geteuid() != 0:
        return
    for base in _mwan_groups() - _GROUPS_BEFORE:
        for sub in os.listdir(base):
            if os.path.isdir(os.path.join(base, sub)):
                try:
                    os.rmdir(os.path.join(base, sub))
                except OSError:
                    pass
        try:
            os.rmdir(base)
        except OSError:
            pass


@pytest.fixture(scope="session")
def lab_available() -> tuple[bool, str]:
    """(ok, reason) from :meth:`Lab.available`, probed once per session."""
    return Lab.available()


@pytest.fixture
def make_lab(lab_available: tuple[bool, str]) -> Iterator[Callable[..., Lab]]:
    """Factory: ``make_lab(isps=2, clients=1, ipv6=True)`` builds a lab, closed after the test."""
    ok, reason = lab_available
    if not ok:
        pytest.skip(f"lab unavailable: {reason}")
    labs: list[Lab] = []

    def factory(**kw: Any) -> Lab:
        lab = Lab(**kw)
        labs.append(lab)
        return lab.build()

    try:
        yield factory
    finally:
        for lab in labs:
            lab.close()


@pytest.fixture
def lab(request: pytest.FixtureRequest, make_lab: Callable[..., Lab]) -> Lab:
    """A built lab; Lab(**param) with indirect parametrization, default 2 ISPs and 1 client."""
    kw: dict[str, Any] = getattr(request, "param", None) or {}
    return make_lab(**kw)


@pytest.fixture
def mwan(lab: Lab) -> Iterator[Callable[[str], MwanRouter]]:
    """``mwan(config_text)`` starts mwan in the lab's router; every one is stopped after."""
    routers: list[MwanRouter] = []

    def start(text: str) -> MwanRouter:
        r = MwanRouter(lab, text)
        routers.append(r)
        res = r.cli("start", check=False)
        assert res.returncode == 0, res.stderr + r.log()
        return r

    try:
        yield start
    finally:
        for r in routers:
            r.close()
