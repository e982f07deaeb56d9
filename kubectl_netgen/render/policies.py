"""``generate``: NetworkPolicy manifests as YAML (byte for byte what PyYAML writes, much faster) or JSON."""

from __future__ import annotations

import functools
import re
from typing import Any

from kubectl_netgen.app import GenerateResult
from kubectl_netgen.render.common import dump_json
from kubectl_netgen.render.escape import comment_text


def policies_yaml(policies: list[dict[str, Any]], names: dict[str, list[str]] | None = None) -> str:
    """Manifests as multi-document YAML (``---`` between documents), names commented beside ipBlocks.

    Names come from input (node and Service names, DNS answers): each comment is written by
    :func:`~kubectl_netgen.render.escape.comment_text`, one printable line that cannot add YAML.

    Args:
        policies: NetworkPolicy manifests, already in their final order.
        names: CIDR -> names to show as a comment on each ``cidr:`` line.

    Returns:
        The YAML text, ending in a newline (empty string for no policies).
    """
    writer = _SpecWriter(names or {})
    return "---\n".join(writer.policy(policy) for policy in policies)


_RAW_BREAKS = re.compile("[\x85\u2028\u2029\ufeff]")


@functools.cache
def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """``safe_dump``'s dumper, without anchors and aliases: manifests may share parts (see synth).

        Strings holding a character YAML reads as a line break but PyYAML writes raw with ``allow_unicode``
        (U+0085, U+2028, U+2029) or a BOM are double-quoted, where they are escaped: single-quoted, they
        would read back as spaces (a label value from input changed on its way out).
        """

        def ignore_aliases(self, data: Any) -> bool:
            return True

        def choose_scalar_style(self) -> str:
            style: str = super().choose_scalar_style()
            value = getattr(self.event, "value", None)
            if style != '"' and isinstance(value, str) and _RAW_BREAKS.search(value):
                return '"'
            return style

    return Dumper


def _safe_dump(data: Any) -> str:
    import yaml

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=120)


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
"""Strings PyYAML may write unquoted and never folds (no spaces) nor turns into complex keys (short)."""


@functools.lru_cache(maxsize=65536)
def _plain(text: str) -> bool:
    """Whether PyYAML writes ``text`` as a plain scalar (not ``true``, ``1.0``, ``null``, … which it quotes)."""
    return _PLAIN.fullmatch(text) is not None and _safe_dump(text) == f"{text}\n...\n"


class _NotPlainError(Exception):
    """A value the fast writer does not handle: the policy is written by PyYAML instead."""


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _plain(value):
        return value
    if type(value) is int:
        return str(value)
    raise _NotPlainError


_SHARED_ITEMS = frozenset({"from", "to"})
_SHARED_LISTS = frozenset({"ports"})
"""Keys whose items (peers) or whole lists (ports) synthesis shares between rules: each is written once."""


class _SpecWriter:
    """Writes NetworkPolicies as PyYAML's ``safe_dump`` does, byte for byte, without PyYAML for the ``spec``.

    PyYAML's pure-Python emitter costs ~100 µs per rule, which dominated ``generate`` on large captures.
    A ``spec`` holds only mappings, lists, label-like strings and numbers, so it is written directly;
    everything else (and any value the direct writer cannot prove it writes alike) goes to PyYAML. The
    peers and port lists that synthesis shares between rules (the same objects) are written once.
    """

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.comments = {cidr: comment_text(values) for cidr, values in names.items()}
        """CIDR -> the text of the comment beside its ``cidr:`` lines, escaped once here."""
        self.written: dict[tuple[int, int], tuple[Any, str]] = {}
        """(indent, id) -> (the object, its text); holding the object keeps its id from being reused."""

    def policy(self, policy: dict[str, Any]) -> str:
        """One manifest, names commented beside its ``cidr:`` lines."""
        spec = policy.get("spec")
        if list(policy)[-1:] == ["spec"] and isinstance(spec, dict) and spec:
            out = [_safe_dump({k: v for k, v in policy.items() if k != "spec"}) if len(policy) > 1 else "", "spec:\n"]
            try:
                self._block(spec, 2, out)
                return "".join(out)
            except _NotPlainError:
                pass
        return self._commented(_safe_dump(policy))

    def _commented(self, text: str) -> str:
        """PyYAML's text of one policy with the comments added beside the ``cidr:`` lines that carry a name.

        The lines are found in the parsed text, not by their look: a quoted multi-line label value can hold
        a line reading ``cidr: …``, and a comment appended there would change the value.
        """
        if not self.comments or "cidr: " not in text:
            return text
        out, start = [], 0
        for end, cidr in _cidr_ends(text):
            if cidr in self.comments and text.startswith("\n", end):
                out += [text[start:end], "  # ", self.comments[cidr]]
                start = end
        return "".join(out) + text[start:]

    def _block(self, value: Any, indent: int, out: list[str], first: str | None = None) -> None:
        """Write a non-empty mapping or list in PyYAML's block style (2-space indent, indentless sequences).

        ``first`` is the prefix of the first line (a sequence item's ``- ``), else it starts on a new line.
        """
        pad = " " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                head = f"{first if first is not None else pad}{_scalar(key)}:"
                first = None
                if isinstance(item, (dict, list)):
                    if not item:
                        out.append(f"{head} {'{}' if isinstance(item, dict) else '[]'}\n")
                        continue
                    out.append(f"{head}\n")
                    if key in _SHARED_LISTS and isinstance(item, list):
                        out.append(self._shared(item, indent))
                    elif key in _SHARED_ITEMS and isinstance(item, list):
                        out.extend(self._shared([peer], indent) for peer in item)
                    else:
                        self._block(item, indent + 2 if isinstance(item, dict) else indent, out)
                elif key == "cidr" and item in self.comments:
                    out.append(f"{head} {_scalar(item)}  # {self.comments[item]}\n")
                else:
                    out.append(f"{head} {_scalar(item)}\n")
            return
        for item in value:
            dash = f"{first if first is not None else pad}- "
            first = None
            if isinstance(item, dict) and item:
                self._block(item, indent + 2, out, dash)
            elif isinstance(item, (dict, list)):
                raise _NotPlainError  # nested or empty sequences: rare, left to PyYAML
            else:
                out.append(f"{dash}{_scalar(item)}\n")

    def _shared(self, items: list[Any], indent: int) -> str:
        """The text of a list written at ``indent``; lists of one shared item are keyed by that item."""
        obj = items[0] if len(items) == 1 and isinstance(items[0], dict) else items
        key = (indent, id(obj))
        found = self.written.get(key)
        if found is None or found[0] is not obj:
            part: list[str] = []
            self._block(items, indent, part)
            found = self.written[key] = (obj, "".join(part))
        return found[1]


def _cidr_ends(text: str) -> list[tuple[int, str]]:
    """(offset of its end, value) of each plain ``cidr: VALUE`` mapping entry on one line of ``text``, in order.

    Offsets, not line numbers: PyYAML counts U+2028 and U+0085 as line breaks, which it writes raw.
    """
    import yaml

    found: list[tuple[int, str]] = []
    stack = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (isinstance(key, yaml.ScalarNode) and key.value == "cidr" and key.style is None
                        and isinstance(value, yaml.ScalarNode) and value.style is None
                        and key.start_mark.line == value.end_mark.line):
                    found.append((value.end_mark.index, value.value))
                else:
                    stack.append(value)
    return sorted(found)


def policies_json(policies: list[dict[str, Any]]) -> str:
    """Manifests as one JSON ``v1 List`` (what ``kubectl apply -f -`` also takes)."""
    return dump_json({"apiVersion": "v1", "kind": "List", "items": policies})


def generate_summary(result: GenerateResult) -> str:
    """One line for stderr: what ``generate`` read and wrote."""
    packets = sum(r.packets for r in result.reports)
    return (f"{len(result.policies)} NetworkPolicies for {result.workloads} workload(s) from {result.flows} flows "
            f"({result.ignored} need no rule) and {packets} packets in {len(result.reports)} capture(s)")
