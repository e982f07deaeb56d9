"""Capture files -> traffic tables, fast and in constant memory.

* :mod:`.files` reads the containers: classic pcap, pcapng, gzip, from files or stdin;
* :mod:`.packets` decodes packets: link layers, IP, transport headers, fragments, DNS payloads;
* :mod:`.stream` holds the byte streams below them (prefix sniffing, damage-tolerant gunzip).
"""

from kubectl_netgen.pcap.files import Scanner, open_capture
from kubectl_netgen.pcap.packets import CaptureReport, DnsSink, linktype_name

__all__ = ["CaptureReport", "DnsSink", "Scanner", "linktype_name", "open_capture"]
