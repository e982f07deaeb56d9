"""DNS answers -> names: CNAME chains, failures and search-domain expansions (dnspython-built messages)."""

from __future__ import annotations

from ipaddress import ip_address

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from kubectl_netgen.dns import DnsNames


def answer(qname: str, *records: tuple[str, str, str], rcode: int = dns.rcode.NOERROR, qtype: str = "A",
           additional: tuple[tuple[str, str, str], ...] = ()) -> bytes:
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for name, rdtype, value in records:
        response.answer.append(dns.rrset.from_text(name, 30, "IN", rdtype, value))
    for name, rdtype, value in additional:
        response.additional.append(dns.rrset.from_text(name, 30, "IN", rdtype, value))
    return response.to_wire()


def test_cname_chain_names_every_hop() -> None:
    names = DnsNames()
    names.feed(answer("API.Example.com.", ("api.example.com.", "CNAME", "api.edge.example.net."),
                      ("api.edge.example.net.", "CNAME", "lb-7.cdn.example.org."),
                      ("lb-7.cdn.example.org.", "A", "203.0.113.10"),
                      ("lb-7.cdn.example.org.", "A", "203.0.113.11")))
    assert names.mapping() == {
        ip_address("203.0.113.10"): ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"],
        ip_address("203.0.113.11"): ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"],
    }
    assert names.responses == 1


def test_search_expansion_nxdomain_and_queries_teach_nothing() -> None:
    names = DnsNames()
    names.feed(answer("api.example.com.default.svc.cluster.local.", rcode=dns.rcode.NXDOMAIN))
    names.feed(dns.message.make_query("api.example.com.", "A").to_wire())
    names.feed(answer("api.example.com.", ("api.example.com.", "AAAA", "2001:db8::10"), qtype="AAAA"))
    assert names.mapping() == {ip_address("2001:db8::10"): ["api.example.com"]}


def test_records_off_the_chain_and_glue_are_ignored() -> None:
    names = DnsNames()
    names.feed(answer("www.example.com.", ("www.example.com.", "A", "198.51.100.1"),
                      ("other.example.com.", "A", "198.51.100.2"),
                      additional=(("ns1.example.com.", "A", "198.51.100.53"),)))
    assert names.mapping() == {ip_address("198.51.100.1"): ["www.example.com"]}


def test_cname_loop_terminates() -> None:
    names = DnsNames()
    names.feed(answer("a.example.com.", ("a.example.com.", "CNAME", "b.example.com."),
                      ("b.example.com.", "CNAME", "a.example.com.")))
    assert names.mapping() == {}


def test_malformed_messages_are_counted() -> None:
    names = DnsNames()
    good = answer("x.example.com.", ("x.example.com.", "A", "192.0.2.1"))
    names.feed(good[:-3])
    names.feed(b"\x00\x01")
    assert names.malformed == 2
    assert names.mapping() == {}
