"""Standard Webhooks signatures, verified by the reference `standardwebhooks` package."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streams.gateway.endpoints import new_secret
from streams.gateway.signatures import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    secret_key,
    sign,
    signed_headers,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
MESSAGE_IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
SECRET = new_secret()


@given(value=JSON, message_id=MESSAGE_IDS, ascii_only=st.booleans())
def test_reference_library_verifies(value, message_id, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    headers = signed_headers(secret_key(SECRET), message_id, int(time.time()), body)
    assert set(headers) == {ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER}
    assert headers[ID_HEADER] == message_id
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)


@given(value=JSON, message_id=MESSAGE_IDS)
def test_tampered_body_refused(value, message_id):
    body = json.dumps(value).encode()
    headers = signed_headers(secret_key(SECRET), message_id, int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(json.dumps([value]).encode(), headers)


@given(value=JSON, message_id=MESSAGE_IDS)
def test_wrong_secret_refused(value, message_id):
    body = json.dumps(value).encode()
    headers = signed_headers(secret_key(new_secret()), message_id, int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_other_id_or_timestamp_refused():
    body = b'{"type":"hotel.reservation.created"}'
    now = int(time.time())
    headers = signed_headers(secret_key(SECRET), "evt_1", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, ID_HEADER: "evt_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, TIMESTAMP_HEADER: str(now - 1)})


def test_old_timestamp_refused_by_receivers():
    body = b"{}"
    headers = signed_headers(secret_key(SECRET), "evt_1", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_known_signature():
    # HMAC-SHA256 of "msg_1.1700000000.{}" under 32 zero bytes, computed independently
    key = bytes(32)
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sign(key, "msg_1", 1700000000, b"{}") == "v1," + expected
    assert Webhook(key).sign("msg_1", __import__("datetime").datetime.fromtimestamp(
        1700000000, __import__("datetime").UTC), "{}") == "v1," + expected


def test_secret_key_decodes_the_secret():
    assert len(secret_key(SECRET)) == 32
    assert secret_key("whsec_" + "A" * 43 + "=") == bytes(32)
