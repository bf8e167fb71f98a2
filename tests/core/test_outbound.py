"""The outbound guard (core/outbound.py) against real loopback listeners: what it refuses (and that nothing was
sent), that it connects to the address it checked, never follows a redirect, keeps to its deadline and size cap,
checks TLS against the hostname, and keeps the detail out of what members see."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import outbound
from core.outbound import NOT_ALLOWED, UNREACHABLE, OutboundRefused, address_refusal, check_url, parse_allowlist
from tests.listener import Listener


@pytest.fixture(autouse=True)
def _nothing_allowed(settings) -> None:
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "a special-purpose address"),
        ("198.18.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fd00::1", "a private address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:127.0.0.1", "a loopback address inside an IPv6 address"),
        ("::ffff:169.254.169.254", "a link-local address inside an IPv6 address"),
        ("::127.0.0.1", "a loopback address inside an IPv6 address"),
        ("::ffff:0:10.0.0.1", "a private address inside an IPv6 address"),
        ("2002:7f00:1::", "a loopback address inside an IPv6 address"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "a link-local address inside an IPv6 address"),  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address, reason):
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # What libc's inet_aton (and so getaddrinfo, curl and browsers) reads as 127.0.0.1.
        ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/", "0177.0.0.1 is 127.0.0.1, a loopback address"),
        ("http://0x7f.1/", "0x7f.1 is 127.0.0.1, a loopback address"),
        ("http://127.1/", "127.1 is 127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "0x7f000001 is 127.0.0.1, a loopback address"),
        ("http://0/", "0 is 0.0.0.0, an unspecified address"),
        ("http://127.0.0.1:8000/x", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address inside an IPv6 address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.5/", "10.0.0.5 is a private address"),
        ("http://localhost:9/", "localhost resolves to a loopback address"),
        ("http://LOCALHOST./", "localhost resolves to a loopback address"),
        ("http://1.2.3.4.5/", "the host '1.2.3.4.5' is not a valid IPv4 address or hostname"),
        ("http://example.0x1/", "is not a valid IPv4 address or hostname"),
        ("http://exa mple.com/", "is not a valid hostname"),
        ("ftp://example.com/", "only http:// and https:// URLs are allowed"),
        ("http://user:pw@example.com/", "a URL with credentials"),
        ("http:///nohost", "the URL has no host"),
        ("http://example.com/caf\u00e9", "the URL's path must be printable ASCII"),
        ("http://127%2e0%2e0%2e1/", "is not a valid hostname"),
    ],
)
def test_refused_urls_say_why(url, message):
    with pytest.raises(OutboundRefused) as caught:
        check_url(url)
    assert message in str(caught.value)
    if "address" in message and "valid" not in message:
        assert str(caught.value).endswith("; ask the operator to allow it in EVALSTUDIO_OUTBOUND_ALLOWLIST")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://2130706433:{port}/",
        "http://0177.0.0.1:{port}/",
        "http://0x7f.1:{port}/",
        "http://127.1:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_a_refused_request_sends_nothing_and_members_see_a_generic_error(url, caplog):
    with Listener() as listener, caplog.at_level(logging.WARNING, logger="core.outbound"):
        result = outbound.request("POST", url.format(port=listener.port), body=b"{}", timeout=2)
    assert result.status is None and result.error == NOT_ALLOWED and not result.ok
    assert "loopback" in result.detail and "loopback" not in result.error
    assert "loopback" in caplog.text
    assert listener.received_nothing()


def test_ipv6_loopback_listener_receives_nothing():
    with Listener(host="::1") as listener:
        result = outbound.request("POST", listener.url, body=b"{}", timeout=2)
    assert result.error == NOT_ALLOWED and listener.received_nothing()


def test_the_allowlist_lets_a_host_or_a_cidr_through(settings):
    with Listener() as listener:
        settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.0/8"]
        first = outbound.request("POST", listener.url, body=b'{"a": 1}', headers={"X-A": "1"}, timeout=2)
        settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["localhost"]
        second = outbound.request("POST", f"http://localhost:{listener.port}/h?q=1", body=b"{}", timeout=2)
        refused = outbound.request("POST", listener.url, body=b"{}", timeout=2)  # the address is not listed
    assert first.ok and first.status == 200 and first.error == "" and second.ok
    assert [(r.method, r.path, r.body) for r in listener.requests] == [
        ("POST", "/hooks/alerts", b'{"a": 1}'),
        ("POST", "/h?q=1", b"{}"),
    ]
    assert listener.requests[0].headers["x-a"] == "1" and listener.requests[1].headers["host"].startswith("localhost")
    assert refused.error == NOT_ALLOWED and len(listener.requests) == 2


def test_a_bad_allowlist_entry_is_named():
    with pytest.raises(ValueError, match="'10.0.0.0/33' is neither a hostname nor an IP address or CIDR"):
        parse_allowlist(["ok.example", "10.0.0.0/33"])
    allowed = parse_allowlist(["Hooks.Internal.", "10.1.0.0/16", "::1"])
    assert allowed.hosts == {"hooks.internal"} and allowed.allows_address(ipaddress.ip_address("10.1.2.3"))


def test_a_redirect_is_an_outcome_never_followed(settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with Listener(host="127.0.0.2") as inner, Listener(status=302, headers={"Location": ""}) as outer:
        outer.headers["Location"] = inner.url
        result = outbound.request("POST", outer.url, body=b"{}", timeout=2)
    assert result.status == 302 and not result.ok
    assert result.error == "delivery failed: the receiver answered with a redirect (HTTP 302), which is not followed"
    assert len(outer.requests) == 1 and inner.received_nothing()


def test_connects_to_the_address_it_checked_without_a_second_lookup(settings, monkeypatch):
    """DNS rebinding: the name answers an allowed address when checked, then a refused one. One lookup only."""
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    real = socket.getaddrinfo
    lookups: list[str] = []
    with Listener() as allowed, Listener(host="127.0.0.2") as internal:
        answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])

        def rebinding(host, port, *args, **kwargs):  # DNS itself is what cannot exist here
            if host == "rebind.test":
                lookups.append(host)
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        result = outbound.request("POST", f"http://rebind.test:{allowed.port}/x", body=b"{}", timeout=2)
        internal_result = outbound.request("POST", f"http://rebind.test:{internal.port}/x", body=b"{}", timeout=2)
    assert result.ok and len(allowed.requests) == 1 and allowed.requests[0].headers["host"].startswith("rebind.test")
    assert lookups == ["rebind.test", "rebind.test"]  # one per request
    assert internal_result.error == NOT_ALLOWED and internal.received_nothing()


def test_a_receiver_that_never_answers_fails_within_the_timeout(settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with ThreadPoolExecutor(1) as pool, Listener(silent=True) as listener:
        started = time.monotonic()
        # A request that ignored its timeout would wait on the silent receiver for ever: the generous deadline turns
        # that into a failure, and is far enough off that a busy machine waking the thread late does not.
        result = pool.submit(outbound.request, "POST", listener.url, body=b"{}", timeout=0.5).result(timeout=30)
        elapsed = time.monotonic() - started
    assert result.status is None and result.error == UNREACHABLE and "timed out" in result.detail
    assert elapsed > 0.4  # it waited (about) the timeout out


def test_the_body_read_is_capped_and_a_500_is_reported_without_detail(settings, caplog):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with Listener(status=500, body=b"x" * 100_000) as listener, caplog.at_level(logging.WARNING):
        result = outbound.request("POST", listener.url, body=b"{}", timeout=2, max_bytes=1000)
    assert (result.status, result.error, len(result.body)) == (500, "delivery failed: HTTP 500", 1000)
    assert "body cut at 1000 bytes" in result.detail and "HTTP 500" in caplog.text


def test_a_closed_port_is_could_not_reach_with_the_detail_only_in_the_log(settings, caplog):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with caplog.at_level(logging.WARNING):
        result = outbound.request("POST", "http://127.0.0.1:9/x", body=b"{}", timeout=2)
    assert result.error == UNREACHABLE and "Connection refused" in result.detail
    assert "Connection refused" in caplog.text and "refused" not in result.error


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_https_checks_the_certificate_and_sni_against_the_hostname(settings, monkeypatch, localhost_cert):
    cert, key = localhost_cert
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["localhost", "127.0.0.1"]
    monkeypatch.setattr(outbound, "_tls_context", lambda: ssl.create_default_context(cafile=cert))
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    with Listener(host="127.0.0.1", tls=server_side) as listener:
        good = outbound.request("POST", f"https://localhost:{listener.port}/h", body=b"{}", timeout=2)
        # The same server by its address: the certificate names localhost only, so TLS fails before any request.
        bad = outbound.request("POST", f"https://127.0.0.1:{listener.port}/h", body=b"{}", timeout=2)
    assert good.ok and listener.server_names[0] == "localhost" and len(listener.requests) == 1
    assert bad.error == UNREACHABLE and "CERTIFICATE_VERIFY_FAILED" in bad.detail and len(listener.requests) == 1
