"""How a pod is captured: the BPF filters, the ephemeral container's command, security context and resources.

The container shares the pod's network namespace and runs :data:`SCRIPT` with ``sh``: it copies the pod's
socket tables, runs tcpdump under ``timeout`` (so it always ends by itself, even if the plugin is gone),
and writes everything to stdout as framed base64 lines (see :mod:`.stream`), which travel back through the
container log. Several tcpdumps run side by side (:attr:`Settings.streams`), each with the snap length its
packets need: TCP and SCTP openings keep their headers (:data:`HEADER_SNAPLEN`), UDP and ICMP datagrams end
at the UDP or ICMP header (:data:`UDP4_SNAPLEN`, :data:`UDP6_SNAPLEN`: no payload byte is kept), and DNS is
kept in full, since names are what policies are written with.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.errors import InputError

DEFAULT_IMAGE = ("docker.io/nicolaka/netshoot:v0.13"
                 "@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b")
"""netshoot (Alpine with tcpdump and a busybox userland), pinned by tag and digest; the container needs only
``sh``, ``timeout``, ``sleep``, ``renice``, ``dd``, ``base64``, ``awk`` and ``tcpdump``."""

SLL2_HEADER = 20
"""Linux cooked header v2: what tcpdump on ``any`` puts before each packet."""
HEADER_SNAPLEN = 128
"""Bytes kept of each TCP/SCTP opening: SLL2 (20) + IPv6 (40) + the longest TCP header (60), rounded up."""
UDP4_SNAPLEN = SLL2_HEADER + 20 + 8
"""Bytes kept of an IPv4 UDP or ICMP datagram: SLL2 + IPv4 without options + the UDP (or ICMP) header. A
datagram with IPv4 options keeps its addresses but loses its ports; never a byte of its payload."""
UDP6_SNAPLEN = SLL2_HEADER + 40 + 8
"""Bytes kept of an IPv6 UDP or ICMPv6 datagram: SLL2 + IPv6 + the UDP (or ICMPv6) header."""
FULL_SNAPLEN = 262144
"""tcpdump's maximum: whole packets (DNS, ``--full``)."""
READ_BYTES = 61200
"""Capture bytes the container reads at once (a multiple of 3, so each read encodes to whole base64)."""
LINE_CHARS = 2720
"""Base64 characters per log line (2,040 capture bytes): with its channel letter each line is one ``write``
below PIPE_BUF (4096), so lines of the tcpdumps never mix."""
IDLE_SECONDS = 2
"""After a read that did not fill :data:`READ_BYTES` the container waits this long, so a busy pod's packets
are encoded a pipe full at a time (a few processes a second, not per packet) and a quiet pod's arrive within
about two seconds; a channel without packets blocks in ``read`` and costs nothing. The first read (the pcap
header) is not followed by a wait, so the first packets arrive at once."""
STREAM_VERSION = "1"

_SYN = "(ip and tcp[tcpflags] & tcp-syn != 0) or (ip6 and ip6[6] = 6 and ip6[53] & 2 != 0)"
_SCTP_INIT = ("(ip and sctp and (sctp[12] = 1 or sctp[12] = 2)) "
              "or (ip6 and ip6[6] = 132 and (ip6[52] = 1 or ip6[52] = 2))")
HEADERS_FILTER = f"(({_SYN}) or ({_SCTP_INIT})) and not port 53"
"""TCP with SYN set (openings and their answers) and SCTP INIT/INIT ACK; DNS goes to its own tcpdump. IPv6
is matched by offsets (libpcap's ``tcp[]`` reads IPv4 only), assuming no extension header."""
UDP4_FILTER = "ip and (udp or icmp) and not port 53"
"""IPv4 UDP (but DNS) and ICMP, cut at :data:`UDP4_SNAPLEN`: an ICMP error keeps none of the datagram it
quotes."""
UDP6_FILTER = "ip6 and (udp or icmp6) and not port 53"
"""IPv6 UDP (but DNS) and ICMPv6, cut at :data:`UDP6_SNAPLEN`."""
DNS_FILTER = "port 53"
"""Every DNS packet, UDP and TCP, in full."""


class Profile(str, enum.Enum):
    """``--profile``: which capabilities the capture container asks for."""

    AUTO = "auto"
    """``netraw``; if Pod Security refuses it or tcpdump lacks a privilege under it, ``baseline``."""
    NETRAW = "netraw"
    """Drop every capability, add back :data:`NETRAW_CAPABILITIES`: NET_RAW (what tcpdump needs without
    promiscuous mode), SETUID/SETGID (tcpdump builds that switch to user ``tcpdump`` after opening the
    socket, Debian's and Alpine's among them, exit without them) and KILL (``timeout``, still root, must
    signal that tcpdump, now another user, when the duration ends). Admitted where Pod Security is
    ``privileged`` (or not enforced)."""
    BASELINE = "baseline"
    """Add nothing and keep the runtime's default set, which on containerd and Docker gives a root container
    NET_RAW. Admitted under Pod Security ``baseline``; fails on runtimes without NET_RAW by default (CRI-O)."""


@dataclass(frozen=True)
class Settings:
    """What the user asked of every pod's capture."""

    duration: int
    """Seconds tcpdump runs."""
    image: str = DEFAULT_IMAGE
    user_filter: str | None = None
    """``--filter``: a BPF expression and-ed with the default filters."""
    full: bool = False
    """``--full``: whole packets of all traffic (one tcpdump)."""
    profile: Profile = Profile.AUTO

    @property
    def streams(self) -> dict[str, tuple[str, int]]:
        """Channel letter -> (BPF filter, snap length) of each tcpdump the container runs."""
        if self.full:
            return {"H": (self.user_filter or "", FULL_SNAPLEN)}
        return {"H": (_and(HEADERS_FILTER, self.user_filter), HEADER_SNAPLEN),
                "U": (_and(UDP4_FILTER, self.user_filter), UDP4_SNAPLEN),
                "V": (_and(UDP6_FILTER, self.user_filter), UDP6_SNAPLEN),
                "D": (_and(DNS_FILTER, self.user_filter), FULL_SNAPLEN)}


def _and(base: str, extra: str | None) -> str:
    return f"({base}) and ({extra})" if extra else base


_DURATION = re.compile(r"(\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Read a Go-style duration (``90s``, ``5m``, ``1h30m``, or plain seconds) into seconds.

    Raises:
        InputError: Not a positive duration.
    """
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    elif text and re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    else:
        raise InputError(f"{text!r} is not a duration; use e.g. 30s, 5m or 1h")
    if seconds <= 0:
        raise InputError(f"{text!r}: the duration must be positive")
    return seconds


MAX_DURATION = 24 * 3600.0
"""The longest ``--duration``: a capture is a sample, and its container holds the pod's resources meanwhile."""
MAX_START_TIMEOUT = 3600.0
"""The longest ``--start-timeout``."""


def format_duration(seconds: float) -> str:
    """Seconds as kubectl writes durations: ``24h``, ``1h30m``, ``90s`` -> ``1m30s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or f"{seconds:g}s"


NICENESS = 19
"""tcpdump and the encoding loop run at the lowest CPU priority, so the pod's own processes come first.

Ephemeral containers cannot have resource requests or limits (the API rejects ``resources`` on them), so a
capture is bounded otherwise: it runs inside the pod's cgroup (the pod's limits hold), at :data:`NICENESS`,
with a bounded kernel buffer (:data:`BUFFER_KIB`), for a bounded time."""
BUFFER_KIB = 4096
"""tcpdump's kernel capture buffer (``-B``), in KiB."""


ATTACH_SECONDS = 1
"""The container waits this long before writing anything, so the plugin's log follower (which starts as soon
as the status says running) is attached before the log could rotate: kubelet serves a new follower the
current log file only, and a stream whose beginning is lost cannot be decoded."""


SCRIPT = r"""set -u
renice -n %(nice)d $$ >/dev/null 2>&1 || true
v=$1; d=$2; shift 2
sleep %(attach)d
echo "NETGEN $v begin"
tables() {
  for t in tcp tcp6 udp udp6; do
    [ -r /proc/net/$t ] || continue
    echo "= $t"
    base64 -w %(line)d < /proc/net/$t
  done | awk -v m="$1" '$1 == "=" { t = $2; print "S " m " " t " -"; next } { print "S " m " " t " " $0 }'
}
reads() {
  first=1
  while c=$(dd bs=%(read)d count=1 2>/dev/null | base64 -w %(line)d) && [ -n "$c" ]; do
    printf '%%s\n' "$c"
    [ ${#c} -ge %(full)d ] || [ $first = 1 ] || sleep %(idle)d
    first=0
  done
}
pump() {
  reads | awk -v c="$1" '{ printf "%%s %%s\n", c, $0; fflush(); n += length($0) } END { printf "%%s . %%d\n", c, n }'
}
tables start
while [ $# -ge 3 ]; do
  ( { timeout "$d" tcpdump -i any -p -nn -U -B %(buffer)d -s "$2" -w - "$3"; echo "NETGEN $1 exit $?" >&2; } \
      2>&1 >&4 | while IFS= read -r l; do echo "$l"; done >&2 ) 4>&1 | pump "$1" &
  shift 3
done
wait
tables end
echo "NETGEN $v end"
""" % {"read": READ_BYTES, "line": LINE_CHARS, "full": READ_BYTES // 3 * 4, "idle": IDLE_SECONDS,  # noqa: UP031 - the shell's own ${...} and $(...) make f-strings and format() awkward
       "nice": NICENESS, "buffer": BUFFER_KIB, "attach": ATTACH_SECONDS}
"""The container's program (``sh -c SCRIPT netgen VERSION SECONDS [CHANNEL SNAPLEN FILTER]...``).

Only POSIX sh and busybox applets (``timeout``, ``sleep``, ``renice``, ``dd``, ``base64``, ``awk``) beside
``tcpdump``. tcpdump runs with ``-p`` (not promiscuous) on ``any`` and writes each packet at once (``-U``).
Per channel one ``awk`` lives as long as its tcpdump: it prefixes each base64 line with the channel letter,
writes it with one ``write`` (``fflush``) and counts the characters for the end line; a ``read`` loop
passes on tcpdump's messages a whole line a write (tcpdump writes a message in pieces, and those of several
tcpdumps would mix within a line) as they come (some awks buffer their input). What it frames comes
from a loop that reads whatever tcpdump wrote (one ``dd`` read, up to :data:`READ_BYTES`) and encodes it
with one ``base64``; the loop waits :data:`IDLE_SECONDS` after a short read, so it forks a few processes a
second on a busy pod instead of three per packet (1.1 CPU seconds for 3,000 connections before; see
``bench/capture_bench.py``), and a read that found nothing blocks."""


def container_command(settings: Settings) -> list[str]:
    """The ephemeral container's ``command``: ``sh -c`` :data:`SCRIPT` with its arguments."""
    args = ["sh", "-c", SCRIPT, "netgen", STREAM_VERSION, str(settings.duration)]
    for channel, (expression, snaplen) in settings.streams.items():
        args += [channel, str(snaplen), expression]
    return args


NETRAW_CAPABILITIES = ("KILL", "NET_RAW", "SETGID", "SETUID")
"""What the ``netraw`` profile adds after dropping ALL. ``tcpdump -Z root`` would not do instead: switching
to root still calls setgroups(), which needs SETGID."""


def security_context(profile: Profile) -> dict[str, Any]:
    """The container's ``securityContext`` for a concrete profile (not ``auto``)."""
    if profile is Profile.NETRAW:
        return {"capabilities": {"drop": ["ALL"], "add": list(NETRAW_CAPABILITIES)}, "privileged": False,
                "allowPrivilegeEscalation": False}
    if profile is Profile.BASELINE:
        return {"privileged": False, "allowPrivilegeEscalation": False}
    raise ValueError(f"{profile} is not a concrete profile")


def profiles_to_try(profile: Profile) -> tuple[Profile, ...]:
    """The concrete profiles to try, in order, for ``--profile``."""
    return (Profile.NETRAW, Profile.BASELINE) if profile is Profile.AUTO else (profile,)


def container_spec(name: str, settings: Settings, profile: Profile) -> dict[str, Any]:
    """The ephemeral container to add to a pod.

    Args:
        name: Unique per capture (``netgen-<id>``), a DNS label.
        settings: What to capture.
        profile: A concrete profile (``netraw`` or ``baseline``).
    """
    return {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": container_command(settings),
        "securityContext": security_context(profile),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "stdin": False,
        "tty": False,
    }
