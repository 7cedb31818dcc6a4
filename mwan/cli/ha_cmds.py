"""``mwan3 ha-config``: write this router's keepalived.conf, conntrackd.conf and notify hook."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable

from ..config.validate import load_config
from ..ha import gen


def write_file(path: str, text: str, mode: int) -> None:
    """Replace ``path`` atomically with ``text`` (owner root when run as root, ``mode``)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".mwan3-ha-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cmd_ha_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.network_config)
    if cfg.ha is None:
        print(f"{args.config}: no 'config ha' section: this router is not one of a pair",
              file=sys.stderr)
        return 1
    paths = gen.Paths.of(cfg.ha, args.dir)
    # keepalived runs the hook as root only from directories only root can write
    os.makedirs(paths.conf_dir, mode=0o755, exist_ok=True)
    os.makedirs(paths.run_dir, mode=0o755, exist_ok=True)
    for name, (text, mode) in gen.files(cfg.ha, paths, args.conntrackd).items():
        path = paths.conf(name)
        write_file(path, text, mode)
        print(path)
    if not args.quiet:
        print("start: " + " ".join(paths.conntrackd_argv(args.conntrackd)), file=sys.stderr)
        print("start: " + " ".join(paths.keepalived_argv()), file=sys.stderr)
        print("and once: ip " + " ".join(gen.blackhole_route(cfg.ha)), file=sys.stderr)
    return 0


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("ha-config", cmd_ha_config,
            "write keepalived.conf, conntrackd.conf and the notify hook from 'config ha'")
    p.add_argument("--dir", metavar="DIR", help="where to write (default: the ha section's "
                   "conf_dir, where status looks for conntrackd.conf)")
    p.add_argument("--conntrackd", metavar="PATH", default=gen.CONNTRACKD,
                   help="the conntrackd the hook runs (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the files written")
