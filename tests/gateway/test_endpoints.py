"""Webhook URLs the gateway refuses to call, secrets, and the endpoint the API shows."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from streams.gateway.endpoints import (
    SECRET_PREFIX,
    Endpoint,
    UrlRefused,
    check_url,
    new_endpoint_id,
    new_secret,
)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/hook",
    "https://93.184.216.34/events?x=1",
    "http://93.184.216.34:80/",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    "https://receiver.example/hook",
])
def test_http_and_https_accepted(url):
    assert check_url(url, resolve=False) == url


@pytest.mark.parametrize("url", [
    "ftp://93.184.216.34/x", "file:///etc/passwd", "javascript:alert(1)",
    "gopher://93.184.216.34/", "93.184.216.34/hook", "",
])
def test_other_schemes_refused(url):
    with pytest.raises(UrlRefused, match="only http and https"):
        check_url(url, resolve=False)


@pytest.mark.parametrize("url", ["http:///hook", "https://:443/hook", "http://"])
def test_no_host_refused(url):
    with pytest.raises(UrlRefused, match="names no host"):
        check_url(url, resolve=False)


@pytest.mark.parametrize("url", ["https://user:pw@93.184.216.34/hook",
                                 "https://user@93.184.216.34/hook",
                                 "https://:pw@93.184.216.34/hook"])
def test_credentials_refused(url):
    with pytest.raises(UrlRefused, match="credentials") as refused:
        check_url(url, resolve=False)
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://93.184.216.34:99999/", "http://93.184.216.34:http/",
                                 "http://93.184.216.34:-1/"])
def test_bad_port_refused(url):
    with pytest.raises(UrlRefused, match="port"):
        check_url(url, resolve=False)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
])
def test_metadata_addresses_refused(url):
    with pytest.raises(UrlRefused, match="cloud metadata address"):
        check_url(url, resolve=False)


@pytest.mark.parametrize("url", ["http://169.254.10.1/", "http://[fe80::1]/",
                                 "http://[fe80::1%25eth0]:8080/", "http://[::ffff:169.254.10.1]/"])
def test_link_local_refused(url):
    with pytest.raises(UrlRefused, match="is link-local"):
        check_url(url, resolve=False)


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal",
                                  "metadata.google.internal.", "metadata", "instance-data"])
def test_metadata_host_names_refused(host):
    with pytest.raises(UrlRefused, match="is a cloud metadata service"):
        check_url(f"http://{host}/computeMetadata/v1/", resolve=False)


def test_allowed_network_lets_link_local_through():
    url = "http://169.254.10.1:8080/hook"
    assert check_url(url, ["169.254.0.0/16"], resolve=False) == url
    assert check_url(url, ["169.254.10.1"], resolve=False) == url
    with pytest.raises(UrlRefused):
        check_url(url, ["169.254.11.0/24"], resolve=False)
    with pytest.raises(UrlRefused):
        check_url("http://[fe80::1]/", ["169.254.0.0/16"], resolve=False)


def test_allowed_network_can_admit_a_metadata_address():
    url = "http://169.254.169.254/"
    assert check_url(url, ["169.254.0.0/16"], resolve=False) == url


def test_resolved_addresses_are_judged(monkeypatch):
    import socket

    def fake_getaddrinfo(host, port, *args, **kwargs):
        assert (host, port) == ("sneaky.example", 8443)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UrlRefused, match="cloud metadata address"):
        check_url("https://sneaky.example:8443/", resolve=True)
    assert check_url("https://sneaky.example:8443/", resolve=False)


def test_unresolvable_host_is_accepted(monkeypatch):
    import socket

    def fail(*args, **kwargs):
        raise socket.gaierror("no such host")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    assert check_url("https://nowhere.example/", resolve=True) == "https://nowhere.example/"


def test_new_secret():
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)) == 32
    assert new_secret() != secret


def test_new_endpoint_id():
    first = new_endpoint_id()
    assert first.startswith("ep_") and len(first) == 35
    assert new_endpoint_id() != first


def test_public_endpoint_has_no_secret():
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    secret = new_secret()
    endpoint = Endpoint(id=new_endpoint_id(), system="hotel-pms",
                        url="https://93.184.216.34/hook", patterns=["reservation.*"],
                        secret=secret, created_at=at, updated_at=at)
    shown = endpoint.public()
    assert "secret" not in shown
    assert secret not in str(shown)
    assert secret not in repr(endpoint)
    assert shown["url"] == "https://93.184.216.34/hook"
    assert shown["status"] == "active"
    assert shown["patterns"] == ["reservation.*"]
    assert shown["created_at"].startswith("2025-01-02T03:04:05")
