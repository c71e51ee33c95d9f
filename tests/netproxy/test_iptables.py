"""Restore text parsing, failing-line context, and RestoreBackend over stand-in binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from netproxy.iptables import RestoreBackend, RestoreError, context, parse_restore

TEXT = """*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "a b" -j REJECT
COMMIT
*nat
:KUBE-SVC-X - [0:0]
-X KUBE-SVC-Y
COMMIT
"""


def test_parse_restore() -> None:
    filter_, nat = parse_restore(TEXT)
    assert filter_.declared == ["KUBE-SERVICES"]
    assert filter_.appends == [("KUBE-SERVICES", ["-m", "comment", "--comment", "a b", "-j",
                                                  "REJECT"], 3)]
    assert nat.deletes == ["KUBE-SVC-Y"]
    with pytest.raises(RestoreError, match="missing COMMIT"):
        parse_restore("*nat\n:X - [0:0]\n")
    with pytest.raises(RestoreError, match="line 2"):
        parse_restore("*nat\n-I X 1 -j ACCEPT\nCOMMIT\n")


def test_context_marks_the_failing_line() -> None:
    lines = context(TEXT, 3, around=1).splitlines()
    assert lines == ["     2  :KUBE-SERVICES - [0:0]",
                     ">    3  -A KUBE-SERVICES -m comment --comment \"a b\" -j REJECT",
                     "     4  COMMIT"]
    assert context(TEXT, None) == ""


def fake_binaries(tmp_path: Path, restore_exit: int, stderr: str) -> str:
    base = tmp_path / "iptables"
    (tmp_path / "iptables-restore").write_text(
        f"#!/bin/sh\ncat > {tmp_path}/restored\necho '{stderr}' >&2\nexit {restore_exit}\n")
    (tmp_path / "iptables-save").write_text(
        "#!/bin/sh\nprintf '*nat\\n:PREROUTING ACCEPT [0:0]\\n:KUBE-SVC-A - [0:0]\\nCOMMIT\\n'\n")
    base.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\n"
                    "case \"$*\" in *' -C '*) exit 1;; esac\nexit 0\n")
    for f in tmp_path.iterdir():
        f.chmod(0o755)
    return str(base)


def test_restore_backend_runs_the_binaries(tmp_path: Path) -> None:
    backend = RestoreBackend(fake_binaries(tmp_path, 0, ""))
    backend.restore(TEXT)
    assert (tmp_path / "restored").read_text() == TEXT
    assert backend.chains("nat") == {"PREROUTING", "KUBE-SVC-A"}
    assert backend.ensure_rule("nat", "OUTPUT", ["-j", "KUBE-SERVICES"])
    assert (tmp_path / "calls").read_text().splitlines() == [
        "-w -t nat -C OUTPUT -j KUBE-SERVICES", "-w -t nat -A OUTPUT -j KUBE-SERVICES"]


def test_restore_errors_carry_the_line(tmp_path: Path) -> None:
    backend = RestoreBackend(fake_binaries(
        tmp_path, 2, "iptables-restore v1.8.9 (nf_tables): Chain X does not exist\n"
                     "Error occurred at line: 3"))
    with pytest.raises(RestoreError) as failure:
        backend.restore(TEXT)
    assert failure.value.line == 3 and "Chain X does not exist" in str(failure.value)


def test_missing_rules_compares_whatever_order_iptables_prints(tmp_path: Path) -> None:
    base = tmp_path / "iptables"
    base.write_text("#!/bin/sh\ncat <<'X'\n-P INPUT ACCEPT\n"
                    "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"a b\" -j KUBE-X\n"
                    "X\n")
    base.chmod(0o755)
    wanted = [["-m", "comment", "--comment", "a b", "-m", "conntrack", "--ctstate", "NEW",
               "-j", "KUBE-X"], ["-j", "KUBE-Y"]]
    backend = RestoreBackend(str(base))
    assert not backend.legacy
    assert backend.missing_rules("filter", [("INPUT", r) for r in wanted]) == [
        ("INPUT", ["-j", "KUBE-Y"])]
