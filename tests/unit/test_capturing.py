"""Pure parts of ``capture``: targets, durations, filters, the container, the framed stream, pcap merging."""

from __future__ import annotations

import base64
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kubectl_netgen.capturing import plan
from kubectl_netgen.capturing.stream import PcapTracker, StreamDecoder, merge_pcaps
from kubectl_netgen.capturing.targets import label_selector, owned_by, parse_target, pod_selector
from kubectl_netgen.errors import InputError
from tests.conftest import need


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("deploy/web", "Deployment", "web"), ("deployments.apps/web", "Deployment", "web"),
    ("sts/db", "StatefulSet", "db"), ("StatefulSet/db", "StatefulSet", "db"), ("ds/x", "DaemonSet", "x"),
    ("rs/x", "ReplicaSet", "x"), ("job/x", "Job", "x"), ("cj/x", "CronJob", "x"), ("cronjob/x", "CronJob", "x"),
    ("svc/web", "Service", "web"), ("po/web-1", "Pod", "web-1"), ("web-1", "Pod", "web-1"),
])
def test_targets_as_kubectl_spells_them(text: str, kind: str, name: str) -> None:
    target = parse_target(text)
    assert (target.kind.kind, target.name) == (kind, name)


@pytest.mark.parametrize("text", ["widget/x", "deploy/", "deploy/a/b"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(InputError):
        parse_target(text)


def test_selectors() -> None:
    assert label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]}, {"key": "x", "operator": "Exists"},
        {"key": "y", "operator": "DoesNotExist"}, {"key": "z", "operator": "NotIn", "values": ["q"]}]}) == (
        "a=1,b=2,tier in (api,web),x,!y,z notin (q)")
    assert label_selector({}) is None
    assert pod_selector(parse_target("svc/web"), {"spec": {"selector": {"app": "web"}}}) == "app=web"
    assert pod_selector(parse_target("svc/ext"), {"spec": {}}) is None  # selectorless: no pods
    assert pod_selector(parse_target("cj/x"), {"spec": {}}) is None
    assert owned_by({"metadata": {"ownerReferences": [{"kind": "Job", "name": "j"}]}}, "Job", {"j"})


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("15", 15), ("500ms", 0.5)])
def test_durations(text: str, seconds: float) -> None:
    assert plan.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "0s", "-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError):
        plan.parse_duration(text)


def test_default_streams_and_user_filter() -> None:
    streams = plan.Settings(60, user_filter="not port 9100").streams
    assert streams == {
        "H": (f"({plan.HEADERS_FILTER}) and (not port 9100)", plan.HEADER_SNAPLEN),
        "U": ("(ip and (udp or icmp) and not port 53) and (not port 9100)", 48),
        "V": ("(ip6 and (udp or icmp6) and not port 53) and (not port 9100)", 68),
        "D": ("(port 53) and (not port 9100)", plan.FULL_SNAPLEN)}
    # Cooked header v2 + IP header + UDP header: not one byte of a datagram's payload.
    assert (plan.UDP4_SNAPLEN, plan.UDP6_SNAPLEN) == (20 + 20 + 8, 20 + 40 + 8)
    assert "udp" not in plan.HEADERS_FILTER
    assert plan.Settings(60, full=True).streams == {"H": ("", plan.FULL_SNAPLEN)}


def test_filters_compile_with_real_tcpdump(tmp_path: Path) -> None:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("needs tcpdump")
    pcap = tmp_path / "empty.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 276))  # LINUX_SLL2, as on 'any'
    for expression, _ in plan.Settings(60, user_filter="not port 9100").streams.values():
        done = subprocess.run([tcpdump, "-r", str(pcap), "-d", expression], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr


def test_container_spec_per_profile() -> None:
    settings = plan.Settings(30)
    netraw = plan.container_spec("netgen-ab12", settings, plan.Profile.NETRAW)
    # tcpdump drops to user tcpdump (SETUID, SETGID), which timeout, still root, must then signal (KILL).
    assert netraw["securityContext"]["capabilities"] == {"drop": ["ALL"],
                                                         "add": ["KILL", "NET_RAW", "SETGID", "SETUID"]}
    assert netraw["command"][:2] == ["sh", "-c"] and netraw["command"][3:6] == ["netgen", "1", "30"]
    assert "timeout \"$d\" tcpdump -i any -p" in netraw["command"][2]
    assert "resources" not in netraw  # the API forbids resources on ephemeral containers
    baseline = plan.container_spec("netgen-ab12", settings, plan.Profile.BASELINE)
    assert "capabilities" not in baseline["securityContext"]
    assert plan.profiles_to_try(plan.Profile.AUTO) == (plan.Profile.NETRAW, plan.Profile.BASELINE)


def _pcap(records: list[tuple[int, bytes]], snaplen: int = 128) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 276)
    for ts, data in records:
        out += struct.pack("<IIII", ts, 0, len(data), len(data)) + data
    return out


def _lines(channel: str, data: bytes, chunk: int = 100) -> list[str]:
    lines = [f"{channel} {base64.b64encode(data[i:i + chunk]).decode()}" for i in range(0, len(data), chunk)]
    return [*lines, f"{channel} . {sum(len(line) - 2 for line in lines)}"]


def _stream(body: list[str], end: bool = True) -> bytes:
    table = base64.encodebytes(b"  sl  local_address rem_address\n").decode().splitlines()
    lines = ["NETGEN 1 begin", "S start tcp -", *(f"S start tcp {t}" for t in table), *body,
             "S end udp6 -", *(["NETGEN 1 end"] if end else [])]
    return ("\n".join(lines) + "\n").encode()


def test_stream_round_trip_in_any_chunking() -> None:
    headers = _pcap([(1, b"a" * 80), (3, b"b" * 60)])
    dns = _pcap([(2, b"d" * 300)], snaplen=262144)
    body = [*_lines("H", headers), "tcpdump: listening on any", *_lines("D", dns), "NETGEN H exit 124"]
    data = _stream(body)
    for size in (1, 7, 4096):
        got: dict[str, bytearray] = {"H": bytearray(), "D": bytearray()}
        decoder = StreamDecoder(lambda c, b, got=got: got[c].extend(b))  # type: ignore[misc]
        for i in range(0, len(data), size):
            decoder.feed(data[i:i + size])
        decoder.finish()
        assert bytes(got["H"]) == headers and bytes(got["D"]) == dns
        assert decoder.problems() == []
        assert decoder.packets == 3
        assert decoder.tables[("start", "tcp")] == b"  sl  local_address rem_address\n"
        assert decoder.tables[("end", "udp6")] == b""
        assert list(decoder.messages) == ["tcpdump: listening on any"]


def test_stream_damage_is_reported() -> None:
    headers = _pcap([(1, b"a" * 80), (3, b"b" * 60)])
    lines = _lines("H", headers)
    del lines[1]  # a line lost in the log
    decoder = StreamDecoder(lambda c, b: None)
    decoder.feed(_stream([*lines[:-1], lines[-1], "NETGEN H exit 1", "H not*base64"]))
    problems = decoder.problems()
    assert any("base64 characters arrived (lost in the log)" in p for p in problems)
    assert any("exited with status 1" in p for p in problems)
    assert any("corrupt line" in p for p in problems)
    cut = StreamDecoder(lambda c, b: None)
    cut.feed(_stream(_lines("H", headers[:-10])[:-1], end=False))
    assert any("ended early (no end marker)" in p for p in cut.problems())
    assert any("the last packet is cut (10 bytes missing)" in p for p in cut.problems())
    assert StreamDecoder(lambda c, b: None).problems() == ["the container sent no capture stream"]
    late = StreamDecoder(lambda c, b: None)
    late.feed(b"H AAAA\n")
    assert late.problems() == ["the start of the stream is missing (the log rotated before it was read)"]


def test_tracker_rejects_garbage() -> None:
    tracker = PcapTracker()
    tracker.feed(b"x" * 40)
    assert tracker.error is not None and "not a pcap" in tracker.error


def test_merge_orders_by_time_and_drops_a_cut_record() -> None:
    headers = _pcap([(1, b"a" * 80), (3, b"b" * 60)])
    dns = _pcap([(2, b"d" * 300)], snaplen=262144)
    out = io.BytesIO()
    report = merge_pcaps([("H", io.BytesIO(headers)), ("D", io.BytesIO(dns[:-5]))], out)
    assert (report.packets, report.cut) == (2, 1)
    out = io.BytesIO()
    report = merge_pcaps([("H", io.BytesIO(headers)), ("D", io.BytesIO(dns))], out)
    merged = out.getvalue()
    assert report.packets == 3
    assert struct.unpack("<I", merged[16:20])[0] == 262144
    timestamps = []
    offset = 24
    while offset < len(merged):
        ts, _, incl, _ = struct.unpack("<IIII", merged[offset:offset + 16])
        timestamps.append(ts)
        offset += 16 + incl
    assert timestamps == [1, 2, 3]
    skipped = merge_pcaps([("H", io.BytesIO(headers)), ("X", io.BytesIO(b"junk" * 10))], io.BytesIO())
    assert skipped.skipped == ("X: not a pcap stream",)


def _image_path(directory: Path, fake_tcpdump: bytes) -> str:
    """A PATH like the capture image's: busybox applets, plus a fake tcpdump writing ``fake_tcpdump``."""
    busybox = shutil.which("busybox")
    if busybox is None:
        need(False, "the capture image's userland is busybox (apt-get install busybox)")
    assert busybox is not None
    directory.mkdir()
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True, timeout=10)
    for applet in listed.stdout.split():
        (directory / applet).symlink_to(busybox)
    (directory.parent / "data.pcap").write_bytes(fake_tcpdump)
    fake = directory / "tcpdump"
    fake.write_text(f"#!{busybox} sh\ncat {directory.parent / 'data.pcap'}\n")
    fake.chmod(0o755)
    return str(directory)


@pytest.mark.parametrize("records", [200, 4000])
def test_the_container_script_runs_with_a_fake_tcpdump(tmp_path: Path, records: int) -> None:
    """The real script under busybox sh with busybox applets only (the capture image's userland) and a
    tcpdump that writes a known pcap: the stream decodes to it, in lines one write each below PIPE_BUF."""
    pcap = _pcap([(i, bytes([i % 256]) * 70) for i in range(records)])
    path = _image_path(tmp_path / "bin", pcap)
    command = plan.container_command(plan.Settings(5))
    done = subprocess.run(command, capture_output=True, timeout=60, check=False, env={"PATH": path})
    assert done.returncode == 0, done.stderr
    got: dict[str, bytearray] = {}
    decoder = StreamDecoder(lambda c, b: got.setdefault(c, bytearray()).extend(b))
    decoder.feed(done.stdout + done.stderr)
    decoder.finish()
    assert decoder.problems() == [], decoder.messages
    assert set(got) == {"H", "U", "V", "D"}
    assert all(bytes(data) == pcap for data in got.values())
    assert ("start", "tcp") in decoder.tables and ("end", "udp") in decoder.tables
    assert max(len(line) + 1 for line in done.stdout.split(b"\n")) < 4096
    data_lines = [line for line in done.stdout.split(b"\n") if line[:2] == b"H " and line[2:3] != b"."]
    assert all(len(line) - 2 <= plan.LINE_CHARS and (len(line) - 2) % 4 == 0 for line in data_lines)
    # A read of up to READ_BYTES is encoded at once: about one base64 process per 60 KB, not one per packet.
    assert len(data_lines) < len(pcap) * 4 // 3 // plan.LINE_CHARS + 2 * (len(pcap) // plan.READ_BYTES + 1)


def test_tcpdumps_error_line_and_privilege_failures() -> None:
    failing = StreamDecoder(lambda c, b: None)
    failing.feed(_stream(["tcpdump: any: You don't have permission to perform this capture on that device",
                          "tcpdump: any: You don't have permission to perform this capture on that device",
                          "(socket: Operation not permitted)", "(socket: Operation not permitted)",
                          "NETGEN H exit 1", "NETGEN D exit 1", "H . 0", "D . 0"]))
    assert failing.privilege_failure() == ("tcpdump: any: You don't have permission to perform this capture on "
                                           "that device (socket: Operation not permitted)")
    assert failing.problems()[0] == ("tcpdump (DNS capture, packet capture) exited with status 1: tcpdump: any: "
                                     "You don't have permission to perform this capture on that device")
    user = StreamDecoder(lambda c, b: None)
    user.feed(_stream(["tcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: Operation not permitted",
                       "NETGEN H exit 1", "H . 0"]))
    assert user.privilege_failure() == "tcpdump: Couldn't change to 'tcpdump' uid=102 gid=105: Operation not permitted"
    syntax = StreamDecoder(lambda c, b: None)
    syntax.feed(_stream(["tcpdump: listening on any", "tcpdump: can't parse filter expression: syntax error",
                         "NETGEN U exit 1", "U . 0"]))
    assert syntax.privilege_failure() is None, "not a privilege: no other profile would help"
    assert syntax.tcpdump_error() == "tcpdump: can't parse filter expression: syntax error"
    ended = StreamDecoder(lambda c, b: None)
    ended.feed(_stream(["Operation not permitted, said something", "NETGEN H exit 0", "H . 0"]))
    assert ended.privilege_failure() is None, "only a tcpdump that failed counts"
