"""Issue 16 item 5: --version, bash/zsh completion with the config's interfaces,
mwan3(8) generated from the parser, journal fields under systemd."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mwan.cli import completion, logsetup, manpage
from mwan.cli.main import build_parser, main, version

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "mwan" / "data" / "mwan3.example"


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mwan3 (mwan) {version()}"
    assert version() != "unknown"


def test_interface_names_from_the_config() -> None:
    assert completion.interface_names(EXAMPLE.read_text()) == ["wan", "wan6", "wanb", "wanb6"]
    assert completion.interface_names("config interface 'a\n") == []  # does not parse: none


def _bash_complete(words: list[str], tmp_path: Path) -> list[str]:
    script = tmp_path / "mwan3.bash"
    script.write_text(completion.bash_script(build_parser()))
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "mwan3"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m mwan.cli.main \"$@\"\n")
    shim.chmod(0o755)
    array = " ".join(f"'{w}'" for w in words)
    out = subprocess.run(
        ["bash", "-c", (f'source "$1"; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; '
         '_mwan3; printf "%s\\n" "${COMPREPLY[@]}"'), "bash", str(script)],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    return sorted(w for w in out.stdout.split("\n") if w)


def test_bash_completes_commands_options_and_interfaces(tmp_path: Path) -> None:
    assert "ifup" in _bash_complete(["mwan3", "if"], tmp_path)
    assert _bash_complete(["mwan3", "status", "--w"], tmp_path) == ["--watch"]
    assert _bash_complete(["mwan3", "--config", str(EXAMPLE), "ifup", "wanb"], tmp_path) == \
        ["wanb", "wanb6"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_interfaces_and_options(tmp_path: Path) -> None:
    """The completion function with zsh's completion builtins stubbed to print their matches."""
    script = tmp_path / "_mwan3"
    script.write_text(completion.zsh_script(build_parser()))
    subprocess.run(["zsh", "-n", str(script)], check=True)
    shim = tmp_path / "mwan3"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m mwan.cli.main \"$@\"\n")
    shim.chmod(0o755)
    stubs = ("compdef() { :; }; _describe() { shift 3; print -l -- ${(P)1}; }; "
             "compadd() { shift; print -l -- \"$@\"; }; source \"$1\"; ")

    def complete(words: list[str]) -> list[str]:
        array = " ".join(f"'{w}'" for w in words)
        out = subprocess.run(
            ["zsh", "-f", "-c", stubs + f"words=({array}); CURRENT={len(words)}; "
             f"PREFIX='{words[-1]}'; _mwan3", "zsh", str(script)], capture_output=True,
            text=True, check=True, cwd=ROOT,
            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
        return out.stdout.split()

    assert complete(["mwan3", "--config", str(EXAMPLE), "ifdown", "w"]) == \
        ["wan", "wan6", "wanb", "wanb6"]
    assert "--watch" in complete(["mwan3", "status", "--w"])


def test_zsh_script_names_every_command() -> None:
    text = completion.zsh_script(build_parser())
    assert text.startswith("#compdef mwan3")
    for name in build_parser().commands:
        assert f"'{name}:" in text


def test_manpage_has_every_command_and_option() -> None:
    parser = build_parser()
    page = manpage.manpage(parser, "2026-01-01")
    assert page.startswith('.TH MWAN3 8 "2026-01-01"')
    for name, sub in parser.commands.items():
        assert f".SS {manpage.roff(name)}\n" in page
        for action in sub.arguments:
            hidden = action.dest == "help" or action.help == argparse.SUPPRESS
            for opt in [] if hidden else action.option_strings:
                assert manpage.roff(opt) in page
    for action in parser.arguments:
        for opt in [] if action.dest == "help" else action.option_strings:
            assert manpage.roff(opt) in page
    if shutil.which("man"):
        out = subprocess.run(["man", "--warnings", "-l", "-"], input=page, text=True,
                             check=False, capture_output=True, env={**os.environ, "MANWIDTH": "80"})
        assert out.returncode == 0 and "warning" not in out.stderr, out.stderr


def test_log_goes_to_stderr_off_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert logsetup.journal_handler() is None


def test_journal_gets_structured_interface_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = pytest.importorskip("systemd.journal", reason="python3-systemd is not installed")
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")  # inherited, but stderr is elsewhere
    assert logsetup.journal_handler() is None
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    handler = logsetup.journal_handler()
    assert isinstance(handler, journal.JournalHandler)
    sent: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(handler, "send", lambda *msg, **fields: sent.append((msg[0], fields)))
    log = logging.getLogger("mwan.test.journal")
    log.addHandler(handler)
    try:
        log.warning("interface %s %s (%s)", "wan", "disconnected", "probes failed",
                    extra={"INTERFACE": "wan", "EVENT": "disconnected", "REASON": "probes failed"})
    finally:
        log.removeHandler(handler)
    msg, fields = sent[0]
    assert msg == "interface wan disconnected (probes failed)"
    assert fields["INTERFACE"] == "wan" and fields["EVENT"] == "disconnected"
    assert fields["REASON"] == "probes failed"
    assert fields["SYSLOG_IDENTIFIER"] == "mwan" and fields["PRIORITY"] == "4"
