"""mwan3(8), generated from the argparse definitions so it never drifts from them.

``python -m mwan.cli.manpage > mwan3.8`` (the package build runs it).  Each
command's section is its parser's description and arguments, as ``--help``
shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .main import Parser, build_parser, version

SEE_ALSO = "nft(8), ip(8), ip-rule(8), conntrack(8), systemd.service(5)"


def roff(text: str) -> str:
    """Text escaped for roff: backslashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"\\fB{roff(s)}\\fR" for s in action.option_strings)
        if action.nargs != 0:
            names += f" \\fI{roff(str(action.metavar or action.dest.upper()))}\\fR"
    elif action.choices:
        names = "\\fB" + "\\fR|\\fB".join(roff(str(c)) for c in action.choices) + "\\fR"
    else:
        names = f"\\fI{roff(str(action.metavar or action.dest).upper())}\\fR"
    help_ = (action.help or "") % {"default": action.default, "prog": "mwan3"}
    return f".TP\n{names}\n{roff(help_)}\n"


def _arguments(parser: Parser, skip: frozenset[str] = frozenset()) -> str:
    return "".join(_argument(a) for a in parser.arguments
                   if a.help != argparse.SUPPRESS and a.dest not in skip | {"help"})


def manpage(parser: Parser, date: str) -> str:
    """The man page of ``parser`` in roff (man(7) macros)."""
    out = [
        f'.TH MWAN3 8 "{date}" "mwan {roff(version())}" "System Administration"\n',
        ".SH NAME\nmwan3 \\- " + roff(parser.description or "") + "\n",
        ".SH SYNOPSIS\n\\fBmwan3\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n",
        (".SH DESCRIPTION\nmwan balances and fails over outgoing connections between several"
        " WAN interfaces, as OpenWrt's mwan3 does, with nftables.  It reads\n"
        ".I /etc/config/mwan3\nand runs one daemon (\\fBmwan3 daemon\\fR under systemd).\n"),
        ".SH GLOBAL OPTIONS\nThese are accepted before or after the command.\n",
        _arguments(parser),
        ".SH COMMANDS\n",
    ]
    global_dests = frozenset(a.dest for a in parser.arguments)  # repeated by every command
    for name, sub in parser.commands.items():
        out.append(f".SS {roff(name)}\n{roff(sub.description or '')}\n")
        args = _arguments(sub, global_dests)
        if args:
            out.append(".RS\n" + args + ".RE\n")
    out.append(".SH FILES\n.TP\n/etc/config/mwan3\nthe configuration (UCI)\n"
               ".TP\n/etc/mwan3.user\nrun on each interface event\n"
               ".TP\n/run/mwan3\npid file, control socket, state\n")
    out.append(".SH ENVIRONMENT\n.TP\nMWAN_CONFIG, MWAN_RUN_DIR\ndefaults of \\fB\\-\\-config\\fR"
               " and \\fB\\-\\-run\\-dir\\fR\n.TP\nJOURNAL_STREAM\nset by systemd: the daemon"
               " logs to the journal with the fields INTERFACE=, EVENT= and REASON=\n")
    out.append(f".SH SEE ALSO\n{roff(SEE_ALSO)}\n")
    return "".join(out)


def main() -> int:
    # SOURCE_DATE_EPOCH: a reproducible build dates the page by the source, not the clock
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    sys.stdout.write(manpage(build_parser(), time.strftime("%Y-%m-%d", time.gmtime(epoch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
