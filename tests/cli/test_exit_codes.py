"""Every documented exit code, produced by running the real program in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kubectl_netgen import __version__
from kubectl_netgen.cli import Environment, main
from kubectl_netgen.errors import ExitStatus
from tests.conftest import SHARED_CAPTURES, run

DNS_PCAP = SHARED_CAPTURES / "zeek" / "dns-long-connection.pcap"


def test_documented_codes_are_these() -> None:
    assert {s.name: s.value for s in ExitStatus} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "INPUT": 3, "DECODE": 4, "CLUSTER": 5, "FORBIDDEN": 6, "NOT_FOUND": 7,
        "CAPTURE_PARTIAL": 8, "CAPTURE_FAILED": 9, "DENIED": 10, "INTERRUPTED": 130,
    }


def test_readme_documents_every_exit_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for status in ExitStatus:
        assert f"| {status.value} |" in readme, f"exit code {status.value} ({status.name}) is not in the README"


def test_ok_version() -> None:
    result = run("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, f"kubectl-netgen {__version__}")


@pytest.mark.parametrize("args", [["--bogus"], ["flows"], ["flows", "x.pcap", "-o", "xml"], ["nosuchcommand"]])
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    result = run(*args)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""
    assert "Usage: kubectl netgen" in result.stderr


def test_missing_file_exits_3(tmp_path: Path) -> None:
    result = run("flows", tmp_path / "nope.pcap")
    assert result.exit_code == ExitStatus.INPUT
    assert result.stdout == ""
    missing = tmp_path / "nope.pcap"
    assert result.stderr == f"error: {missing}: no such file; give the path of a pcap or pcapng capture\n"


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n", b"\x00" * 100])
def test_not_a_capture_exits_3(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    result = run("flows", path)
    assert result.exit_code == ExitStatus.INPUT
    assert result.stderr.startswith(f"error: {path} ")
    assert result.stderr.count("\n") == 1


def test_directory_exits_3(tmp_path: Path) -> None:
    result = run("dns", tmp_path)
    assert result.exit_code == ExitStatus.INPUT
    assert "is a directory" in result.stderr


def test_damaged_capture_with_strict_exits_4(tmp_path: Path) -> None:
    data = DNS_PCAP.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-7])
    assert run("flows", cut, "-o", "json").exit_code == ExitStatus.OK
    strict = run("dns", cut, "--strict", "-o", "json")
    assert strict.exit_code == ExitStatus.DECODE
    assert strict.stderr.startswith(f"error: {cut}: truncated at byte ")


class _Exploding(io.RawIOBase):
    """A stdin whose read fails the way the test asks."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise self.error


def _run_with_stdin(error: BaseException, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    env = Environment(stdin=io.TextIOWrapper(io.BufferedReader(_Exploding(error))), stdout=io.StringIO(),
                      stderr=err, stdout_isatty=False)
    return main(list(args), env), err.getvalue()


def test_interrupted_exits_130() -> None:
    code, err = _run_with_stdin(KeyboardInterrupt(), "flows", "-")
    assert code == ExitStatus.INTERRUPTED
    assert err == "interrupted\n"


def test_unexpected_error_exits_1_without_traceback() -> None:
    code, err = _run_with_stdin(RuntimeError("boom"), "flows", "-")
    assert code == ExitStatus.ERROR
    assert err == "error: unexpected RuntimeError: boom (a bug: rerun with --debug and report it)\n"


def test_unexpected_error_with_debug_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        _run_with_stdin(RuntimeError("boom"), "--debug", "flows", "-")


def test_stdin_read_error_is_an_input_error() -> None:
    code, err = _run_with_stdin(OSError(5, "Input/output error"), "flows", "-")
    assert code == ExitStatus.INPUT
    assert err == "error: cannot read -: Input/output error\n"


def test_stdout_is_pure_json_and_summary_goes_to_stderr() -> None:
    result = run("flows", DNS_PCAP)  # not a terminal: JSON by default
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["dst_port"] == 53
    assert result.stderr == "1 flows (0 with a guessed direction) from 22 packets in 1 capture(s)\n"


def test_table_on_a_terminal() -> None:
    result = run("flows", DNS_PCAP, tty=True)
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["PROTO", "CLIENT", "SERVER", "PORT", "CONNS", "PACKETS", "BYTES", "FIRST", "SEEN",
                              "LAST", "SEEN", "DIRECTION"]
    assert row.split()[:6] == ["UDP", "192.168.170.8", "192.168.170.20", "53", "1", "22"]
    names = run("dns", DNS_PCAP, tty=True)
    assert "www.netbsd.org" in names.stdout and names.stdout.startswith("ADDRESS")


def test_stdin_dash_reads_the_capture() -> None:
    piped = run("flows", "-", "-o", "json", stdin=DNS_PCAP.read_bytes())
    assert piped.stdout == run("flows", DNS_PCAP, "-o", "json").stdout
    assert run("flows", "-", "-", stdin=b"").exit_code == ExitStatus.INPUT


def test_gzip_capture(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(DNS_PCAP.read_bytes()))
    assert run("flows", gz, "-o", "json").stdout == run("flows", DNS_PCAP, "-o", "json").stdout
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gz.read_bytes()[:-30])
    damaged = run("flows", cut, "-o", "json")
    assert damaged.exit_code == 0
    assert "gzip stream ends early" in damaged.stderr


def _syn_frame() -> bytes:
    import struct

    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 244, 1, 1]), bytes([10, 244, 1, 2]))
    return eth + ip + struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 1000, 0, 0)


def _block(kind: int, body: bytes) -> bytes:
    import struct

    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_an_original_length_below_the_captured_one_is_a_warning_never_negative_bytes(tmp_path: Path, fmt: str) -> None:
    import struct

    frame = _syn_frame()
    if fmt == "pcap":
        data = (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                + struct.pack("<IIII", 1, 0, len(frame), 10) + frame)
    else:
        data = (_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + _block(1, struct.pack("<HHI", 1, 0, 0))
                + _block(6, struct.pack("<IIIII", 0, 0, 1_000_000, len(frame), 10) + frame))
    path = tmp_path / f"short.{fmt}"
    path.write_bytes(data)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0, result.stderr
    [flow] = json.loads(result.stdout)
    assert flow["bytes"] == 40  # the IP packet as captured
    assert (f"{path}: 1 record(s) give an original length below their captured length (a damaged or hand-made "
            "file); their captured length is counted instead") in result.stderr
