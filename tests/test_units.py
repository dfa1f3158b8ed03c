"""Unit tests: tokens, passwords, validation rules, time formats, configuration, query loader."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import DROP, SECRET, claims_for, forge
from widgetsvc import timefmt
from widgetsvc.auth import passwords, tokens
from widgetsvc.auth.keys import hmac_key, hmac_keyring
from widgetsvc.config import Config, ConfigError
from widgetsvc.db import QUERIES_DIR, SQL_DIR, load_queries
from widgetsvc.errors import APIError
from widgetsvc.validation import (
    InvalidValue,
    Validator,
    check_email,
    check_password,
    check_url,
    check_widget_name,
    parse_deadline,
    parse_page,
    parse_per_page,
)

PUBLIC_ID = uuid.UUID("efa2ab89-15a6-49ec-96c2-e15cf7a3cc6f")
SID = uuid.UUID("0b7c5a8e-3f34-4c2b-9a52-6c1f7d3e9b10")
KEYS = hmac_keyring(SECRET)
KID = hmac_key(SECRET).kid
NOW = datetime(2026, 11, 25, 14, 52, 24, 654321, tzinfo=UTC)
TODAY = date(2026, 11, 25)


# -- tokens ---------------------------------------------------------------------------------

def real_now() -> datetime:
    return datetime.now(UTC)


def payload(**overrides) -> dict:
    """A valid token's claims for PUBLIC_ID (``DROP`` leaves a claim out)."""
    return claims_for(PUBLIC_ID, **{"jti": "abc123", **overrides})


def test_issue_builds_the_contract_token():
    token, claims = tokens.issue(PUBLIC_ID, True, session_id=SID, keys=KEYS, lifetime=900,
                                   now=NOW)
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "HS256", "kid": KID}
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False,
                                                                        "verify_iat": False})
    issued = int(NOW.replace(microsecond=0).timestamp())
    assert decoded == {"exp": issued + 900, "iat": issued, "sub": str(PUBLIC_ID),
                       "admin": True, "jti": claims.jti, "sid": str(SID)}
    assert claims.sid == SID
    assert claims.public_id == PUBLIC_ID
    assert claims.issued_at == NOW.replace(microsecond=0)
    assert claims.expires_at == NOW.replace(microsecond=0) + timedelta(seconds=900)
    assert claims.admin is True
    assert 1 <= len(claims.jti) <= 64


def test_issue_makes_the_admin_claim_a_bool():
    token, claims = tokens.issue(PUBLIC_ID, 0, session_id=SID, keys=KEYS, lifetime=60, now=NOW)
    assert claims.admin is False
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["admin"] is False
    assert decoded["exp"] - decoded["iat"] == 60


def test_issue_gives_each_token_its_own_jti():
    jtis = {tokens.issue(PUBLIC_ID, False, session_id=SID, keys=KEYS, lifetime=900, now=NOW)[1].jti
            for _ in range(50)}
    assert len(jtis) == 50


def test_issue_then_decode_round_trip():
    now = real_now()
    token, issued = tokens.issue(PUBLIC_ID, True, session_id=SID, keys=KEYS, lifetime=900, now=now)
    assert tokens.decode(token, keys=KEYS) == issued


@pytest.mark.parametrize("admin", [DROP, "true", 1, None])
def test_decode_refuses_a_missing_or_non_boolean_admin_claim(admin):
    # docs/API.md §6: every claim is required; the admin claim is informational but typed.
    with pytest.raises(tokens.TokenInvalid):
        tokens.decode(forge(payload(admin=admin)), keys=KEYS)


def test_decode_an_expired_token():
    now = int(real_now().timestamp())
    with pytest.raises(tokens.TokenExpired):
        tokens.decode(forge(payload(iat=now - 1000, exp=now - 100)), keys=KEYS)


def test_decode_honours_the_leeway():
    now = int(real_now().timestamp())
    token = forge(payload(iat=now - 1000, exp=now - 5))
    assert tokens.decode(token, keys=KEYS, leeway=60).public_id == PUBLIC_ID
    with pytest.raises(tokens.TokenExpired):
        tokens.decode(token, keys=KEYS, leeway=0)


def bad_tokens() -> dict[str, str]:
    good = payload()
    valid = forge(good)
    head, body, sig = valid.split(".")
    now = int(real_now().timestamp())
    return {
        "empty": "",
        "garbage": "garbage",
        "two parts": f"{head}.{body}",
        "four parts": f"{valid}.{sig}",
        "space inside": f"{head}.{body} .{sig}",
        "too long": "a" * 3000 + "." + "b" * 1000 + "." + "c" * 200,
        "wrong secret": forge(good, secret="some-other-secret-that-is-long-enough"),
        "tampered signature": f"{head}.{body}.{sig[::-1]}",
        "HS512": forge(good, algorithm="HS512"),
        "HS384": forge(good, algorithm="HS384"),
        "none": jwt.encode(good, None, algorithm="none"),
        "no exp": forge(payload(exp=DROP)),
        "no iat": forge(payload(iat=DROP)),
        "no sub": forge(payload(sub=DROP)),
        "no jti": forge(payload(jti=DROP)),
        "no sid": forge(payload(sid=DROP)),
        "sid not a uuid": forge(payload(sid="session-1")),
        "sid an int": forge(payload(sid=7)),
        "no kid": forge(good, kid=DROP),
        "unknown kid": forge(good, kid="not-a-key-of-ours"),
        "kid of another secret": forge(
            good, kid=hmac_key("another-secret-long-enough-01234567").kid),
        "sub not a uuid": forge(payload(sub="12345")),
        "sub an int": forge(payload(sub=12345)),
        "jti an int": forge(payload(jti=7)),
        "jti empty": forge(payload(jti="")),
        "jti 65 chars": forge(payload(jti="j" * 65)),
        "exp a string": forge(payload(exp="soon")),
        "iat a bool": forge(payload(iat=True)),
        "iat in the future": forge(payload(iat=now + 3600, exp=now + 7200)),
        "nbf in the future": forge(payload(nbf=now + 3600)),
        "exp out of range": forge(payload(exp=10**20)),
    }


@pytest.mark.parametrize("name", list(bad_tokens()))
def test_decode_rejects(name):
    with pytest.raises(tokens.TokenInvalid):
        tokens.decode(bad_tokens()[name], keys=KEYS)


def test_decode_accepts_a_jti_of_64_chars():
    assert tokens.decode(forge(payload(jti="j" * 64)), keys=KEYS).jti == "j" * 64


def test_decode_returns_aware_utc_datetimes():
    now = int(real_now().timestamp())
    claims = tokens.decode(forge(payload(iat=now, exp=now + 900)), keys=KEYS)
    assert claims.issued_at == datetime.fromtimestamp(now, UTC)
    assert claims.expires_at - claims.issued_at == timedelta(seconds=900)
    assert claims.expires_at.tzinfo is UTC


# -- passwords ------------------------------------------------------------------------------

def test_hash_and_check_a_password():
    stored = passwords.hash_password("Secret-pass-1", 4)
    assert stored.startswith("$2b$04$") and len(stored) == 60
    assert passwords.check_password("Secret-pass-1", stored)
    assert not passwords.check_password("secret-pass-1", stored)
    assert not passwords.check_password("Secret-pass-", stored)
    assert passwords.hash_password("Secret-pass-1", 4) != stored  # salted


def test_hash_uses_the_given_cost():
    assert passwords.hash_password("Secret-pass-1", 5).startswith("$2b$05$")


def test_multibyte_passwords_up_to_72_bytes():
    password = "é" * 36
    stored = passwords.hash_password(password, 4)
    assert passwords.check_password(password, stored)
    assert not passwords.check_password("é" * 35 + "e", stored)


def test_check_never_matches_over_72_bytes():
    stored = passwords.hash_password("a" * 72, 4)
    assert not passwords.check_password("a" * 73, stored)


def test_hash_refuses_over_72_bytes_rather_than_truncating():
    with pytest.raises(ValueError):
        passwords.hash_password("a" * 73, 4)


@pytest.mark.parametrize("stored", ["", "not-a-hash", "$2b$04$short", "$2b$99$" + "a" * 53])
def test_a_corrupt_stored_hash_never_matches(stored):
    assert passwords.check_password("Secret-pass-1", stored) is False


def test_dummy_hash_is_a_real_hash_at_that_cost_and_cached():
    first = passwords.dummy_hash(4)
    assert first.startswith("$2b$04$")
    assert passwords.dummy_hash(4) is first
    assert not passwords.check_password("Secret-pass-1", first)


# -- validation: e-mail, password, widget name, URL -----------------------------------------

@pytest.mark.parametrize("value", [
    "user@example.com",
    "first.last+tag@sub.example.co.uk",
    "UPPER@EXAMPLE.COM",
    "o'brien@example.ie",
    "user@bücher.de",
    "user@xn--bcher-kva.example",
    "a" * 243 + "@example.com",
])
def test_check_email_accepts(value):
    assert check_email(value) == value


@pytest.mark.parametrize("value", [
    "", "plain", "@example.com", "user@", "a@b@example.com", "us er@example.com",
    "user@exa mple.com", "user@example..com", "a..b@example.com", ".a@example.com",
    "a.@example.com", "user@localhost", "user@LOCALHOST", "user@127.0.0.1", "user@[10.0.0.1]",
    "user@[::1]", "user@::1", "user@example", "user@-bad.com", "user@bad-.com",
    "user@under_score.com", "user@example.123", "user\x00@example.com", "user\x7f@example.com",
    "user\r\n@example.com", '"q"@example.com', "a<b@example.com", "a" * 244 + "@example.com",
])
def test_check_email_rejects(value):
    with pytest.raises(InvalidValue) as exc:
        check_email(value)
    assert str(exc.value) == f"{value} is not a valid email"


@pytest.mark.parametrize("value", ["12345678", "éééééééé", "😀" * 8, "a" * 72, "é" * 36,
                                   "😀" * 18, "€" * 24])
def test_check_password_accepts(value):
    assert check_password(value) == value


@pytest.mark.parametrize("value", ["", "1234567", "ééééééé", "😀" * 7])
def test_check_password_too_short_counts_code_points(value):
    with pytest.raises(InvalidValue) as exc:
        check_password(value)
    assert str(exc.value) == "Password must be at least 8 characters."


@pytest.mark.parametrize("value", ["a" * 73, "é" * 36 + "a", "😀" * 19, "€" * 25])
def test_check_password_too_long_counts_utf8_bytes(value):
    with pytest.raises(InvalidValue) as exc:
        check_password(value)
    assert str(exc.value) == "Password must be at most 72 bytes."


@pytest.mark.parametrize("value", ["w", "my-widget", "My_Widget_2", "a" * 100, "wïdget", "-_-",
                                   "İ" * 50])
def test_check_widget_name_accepts_as_sent_and_lower_cases(value):
    # "İ" lower-cases to "i" + a combining dot (not a word character): checked as sent.
    assert check_widget_name(value) == value.lower()


@pytest.mark.parametrize("value", ["", "my widget", "my.widget", "a/b", "a\nb", "w!",
                                   "wid\x00get", "name?", "ü ber", "Bad Name"])
def test_check_widget_name_rejects_characters(value):
    with pytest.raises(InvalidValue) as exc:
        check_widget_name(value)
    assert str(exc.value) == (  # quoted lower-cased, like every message about a widget
        f"'{value.lower()}' contains one or more invalid characters. Widget name must contain only "
        "letters, numbers, hyphen and underscore characters."
    )


@pytest.mark.parametrize("value", ["a" * 101, "a b" * 50])
def test_check_widget_name_rejects_length_first(value):
    with pytest.raises(InvalidValue) as exc:
        check_widget_name(value)
    assert str(exc.value) == "Widget name must be at most 100 characters."


@pytest.mark.parametrize("value", [
    "https://www.fakesite.com",
    "http://example.com",
    "http://example.com/path?q=1#frag",
    "HTTPS://Example.COM/",
    "https://bücher.de/",
    "https://" + ("a" * 60 + ".") * 3 + "example.com",
])
def test_check_url_accepts(value):
    assert len(value) <= 255
    assert check_url(value) == value


@pytest.mark.parametrize(("value", "reason"), [
    ("www.fakesite.com", ". Did you mean: http://www.fakesite.com"),
    ("example.com/path", ". Did you mean: http://example.com/path"),
    ("ftp://example.com", ". Protocol is not allowed"),
    ("javascript://example.com", ". Protocol is not allowed"),
    ("http://127.0.0.1", ". IP is not allowed"),
    ("https://8.8.8.8/path", ". IP is not allowed"),
    ("http://[::1]/", ". IP is not allowed"),
    ("http://localhost", ". Localhost is not allowed"),
    ("http://LOCALHOST/x", ". Localhost is not allowed"),
    ("http://api.localhost", ". Localhost is not allowed"),
    ("http://example.com:8080", ". Custom port is not allowed"),
    ("http://example.com:80/", ". Custom port is not allowed"),
    ("http://example.com:", ". Custom port is not allowed"),
    ("http://user:pass@example.com", ". Authentication is not allowed"),
    ("http://user@example.com", ". Authentication is not allowed"),
    ("", ""),
    ("example", ""),
    ("http://", ""),
    ("http://exa mple.com", ""),
    ("http://example", ""),
    ("http://example.com:99999", ""),
    ("http://-bad.com", ""),
    ("https://example.com/\x00", ""),
    ("https://example.com/" + "a" * 236, ""),  # 256 characters
])
def test_check_url_rejects_with_reason(value, reason):
    with pytest.raises(InvalidValue) as exc:
        check_url(value)
    assert str(exc.value) == f"{value} is not a valid URL{reason}"


# -- validation: deadline, page, per_page ---------------------------------------------------

@pytest.mark.parametrize("value", ["2026-11-28", "11/28/2026", "Nov 28 2026", "28 November 2026",
                                   "2026/11/28", "November 28, 2026", "2026-11-28T10:00:00"])
def test_parse_deadline_reads_any_dateutil_format(value):
    assert parse_deadline(value, TODAY) == date(2026, 11, 28)


def test_parse_deadline_accepts_today():
    assert parse_deadline("2026-11-25", TODAY) == TODAY
    assert parse_deadline("11/25/2026", TODAY) == TODAY


@pytest.mark.parametrize(("value", "shown"), [
    ("2026-11-24", "Nov 24 2026"),
    ("11/24/2026", "Nov 24 2026"),
    ("Jan 1 2000", "Jan 01 2000"),
    ("2025-12-31", "Dec 31 2025"),
])
def test_parse_deadline_in_the_past(value, shown):
    with pytest.raises(InvalidValue) as exc:
        parse_deadline(value, TODAY)
    assert str(exc.value) == (
        f"Successfully parsed {value} as {shown}. However, this value must be a date in the "
        f"future and {shown} is BEFORE Nov 25 2026"
    )


@pytest.mark.parametrize("value", ["", "not a date", "2026-02-30", "2026-13-01", "32/01/2026",
                                   "99999999999999999999999", "2026-11-28\x00",
                                   "2026-11-28" + " " * 100, "tomorrow-ish"])
def test_parse_deadline_unparseable(value):
    with pytest.raises(InvalidValue) as exc:
        parse_deadline(value, TODAY)
    assert str(exc.value) == (
        f"Failed to parse '{value}' as a valid date. You can use any format recognized by "
        "dateutil.parser. For example, all of the strings below are valid ways to represent the "
        "same date: '2018-5-13' -or- '05/13/2018' -or- 'May 13 2018'."
    )


@pytest.mark.parametrize(("value", "number"), [("1", 1), ("2", 2), ("+3", 3), ("007", 7),
                                                ("1000000", 1000000)])
def test_parse_page_accepts(value, number):
    assert parse_page(value) == number


@pytest.mark.parametrize(("value", "message"), [
    ("0", "Invalid page: 0. page must be a positive integer"),
    ("-1", "Invalid page: -1. page must be a positive integer"),
    ("-0", "Invalid page: -0. page must be a positive integer"),
    ("abc", "abc is not a valid integer"),
    ("1.5", "1.5 is not a valid integer"),
    ("", " is not a valid integer"),
    ("1e3", "1e3 is not a valid integer"),
    ("١", "١ is not a valid integer"),
])
def test_parse_page_rejects(value, message):
    with pytest.raises(InvalidValue) as exc:
        parse_page(value)
    assert str(exc.value) == message


@pytest.mark.parametrize("value", ["5", "10", "25", "50", "100"])
def test_parse_per_page_accepts_the_choices(value):
    assert parse_per_page(value) == int(value)


@pytest.mark.parametrize(("value", "message"), [
    ("7", "The value '7' is not a valid choice for 'per_page'."),
    ("1", "The value '1' is not a valid choice for 'per_page'."),
    ("1000", "The value '1000' is not a valid choice for 'per_page'."),
    ("0", "Invalid per_page: 0. per_page must be a positive integer"),
    ("-5", "Invalid per_page: -5. per_page must be a positive integer"),
    ("ten", "ten is not a valid integer"),
    ("5.0", "5.0 is not a valid integer"),
])
def test_parse_per_page_rejects(value, message):
    with pytest.raises(InvalidValue) as exc:
        parse_per_page(value)
    assert str(exc.value) == message


# -- the Validator ---------------------------------------------------------------------------

@pytest.fixture
def validator():
    return Validator(timefmt.FixedClock(NOW))


def validation_errors(validator, schema: str, data: dict, where: str = "post body") -> dict:
    with pytest.raises(APIError) as exc:
        validator.validate(schema, data, where)
    assert exc.value.status == "400 Bad Request"
    assert exc.value.body["message"] == "Input payload validation failed"
    return exc.value.body["errors"]


def test_validator_accepts_good_credentials(validator):
    validator.validate("credentials", {"email": "a@example.com", "password": "Secret-pass-1"})


def test_validator_reports_every_failing_field(validator):
    assert validation_errors(validator, "credentials", {}) == {
        "email": "Missing required parameter in the post body",
        "password": "Missing required parameter in the post body",
    }
    assert validation_errors(validator, "credentials", {"email": "x", "password": "y"}) == {
        "email": "x is not a valid email",
        "password": "Password must be at least 8 characters.",
    }


def test_a_remembered_query_string_passes_and_an_invalid_one_still_fails(validator):
    """The pagination values the validator remembers change no answer: the same valid
    query passes again with the same values, invalid ones fail every time, before and after,
    and the memory stays bounded. Credentials (passwords) and clock-dependent bodies are never
    remembered."""
    good = {"page": "2", "per_page": "25"}
    bad = {"page": "0", "per_page": "7"}
    for _ in range(3):
        values = validator.validate("pagination", good, "query string")
        assert values == {"page": 2, "per_page": 25}
        values["page"] = 99  # a caller's change does not reach the memory
        assert set(validation_errors(validator, "pagination", bad, "query string")) == {
            "page", "per_page"}
    assert len(validator._passed) == 1
    for page in range(1, 3000):
        validator.validate("pagination", {"page": str(page)}, "query string")
    assert 0 < len(validator._passed) <= 1024
    assert validation_errors(validator, "pagination", {"page": "-1"}, "query string")

    validator._passed.clear()
    validator.validate("credentials", {"email": "a@example.com", "password": "Secret-pass-1"})
    validator.validate("widget_create", {"name": "w", "info_url": "https://example.com",
                                         "deadline": "2099-01-01"})
    assert validator._passed == {}


def test_the_validator_returns_what_its_rules_normalise(validator):
    """Resources use these values and parse nothing again."""
    assert validator.validate("pagination", {}, "query string") == {"page": 1, "per_page": 10}
    assert validator.validate("pagination", {"page": "+07", "per_page": "25", "x": "y"},
                              "query string") == {"page": 7, "per_page": 25}
    assert validator.validate("widget_create", {
        "name": "My-İ", "info_url": "https://example.com", "deadline": "Nov 25 2026",
        "ignored": 1}) == {
        "name": "my-i\u0307", "info_url": "https://example.com",
        "deadline": datetime(2026, 11, 25, 23, 59, 59, 999999, tzinfo=UTC)}
    assert validator.validate("credentials", {"email": "A@Example.com",
                                              "password": "Secret-pass-1"}) == {
        "email": "A@Example.com", "password": "Secret-pass-1"}


def test_validator_uses_its_clock_for_deadlines(validator):
    data = {"name": "w", "info_url": "https://example.com", "deadline": "2026-11-24"}
    assert validation_errors(validator, "widget_create", data) == {
        "deadline": "Successfully parsed 2026-11-24 as Nov 24 2026. However, this value must "
                    "be a date in the future and Nov 24 2026 is BEFORE Nov 25 2026",
    }
    validator.validate("widget_create", {**data, "deadline": "2026-11-25"})


def test_validator_names_the_query_string(validator):
    errors = validation_errors(validator, "pagination", {"page": "0", "per_page": "7"},
                               "query string")
    assert errors == {"page": "Invalid page: 0. page must be a positive integer",
                      "per_page": "The value '7' is not a valid choice for 'per_page'."}
    errors = validation_errors(validator, "credentials", {"password": "Secret-pass-1"},
                               "query string")
    assert errors == {"email": "Missing required parameter in the query string"}


# -- time formats ---------------------------------------------------------------------------

def test_format_date():
    assert timefmt.format_date(datetime(2026, 11, 25, 14, 52, 24, tzinfo=UTC)) == \
        "11/25/26 02:52:24 PM UTC"
    assert timefmt.format_date(datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)) == \
        "01/02/26 12:00:00 AM UTC"
    assert timefmt.format_date(datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)) == \
        "01/02/26 12:00:00 PM UTC"
    assert timefmt.format_date(datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC)) == \
        "11/28/26 11:59:59 PM UTC"


def test_format_date_converts_to_utc():
    eastern = timezone(timedelta(hours=-5))
    assert timefmt.format_date(datetime(2026, 11, 25, 21, 30, 0, tzinfo=eastern)) == \
        "11/26/26 02:30:00 AM UTC"


def test_format_iso8601():
    assert timefmt.format_iso8601(datetime(2026, 11, 25, 14, 52, 37, 987654, tzinfo=UTC)) == \
        "2026-11-25T14:52:37"
    plus2 = timezone(timedelta(hours=2))
    assert timefmt.format_iso8601(datetime(2026, 1, 1, 1, 0, 0, tzinfo=plus2)) == \
        "2025-12-31T23:00:00"


def test_format_rfc822():
    assert timefmt.format_rfc822(datetime(2026, 11, 25, 14, 52, 37, tzinfo=UTC)) == \
        "Wed, 25 Nov 2026 14:52:37 -0000"
    assert timefmt.format_rfc822(datetime(2026, 3, 1, 0, 0, 5, 999, tzinfo=UTC)) == \
        "Sun, 01 Mar 2026 00:00:05 -0000"
    plus2 = timezone(timedelta(hours=2))
    assert timefmt.format_rfc822(datetime(2026, 1, 1, 1, 0, 0, tzinfo=plus2)) == \
        "Wed, 31 Dec 2025 23:00:00 -0000"


def test_format_short_date_and_end_of_day():
    assert timefmt.format_short_date(date(2026, 11, 28)) == "Nov 28 2026"
    assert timefmt.format_short_date(date(2026, 1, 5)) == "Jan 05 2026"
    assert timefmt.end_of_day(date(2026, 11, 28)) == \
        datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC)


def test_fixed_clock():
    clock = timefmt.FixedClock(NOW)
    assert clock.now() == NOW
    clock.advance(seconds=90)
    assert clock.now() == NOW + timedelta(seconds=90)
    assert timefmt.Clock().now().tzinfo is UTC


@pytest.mark.parametrize(("remaining", "expected"), [
    (timedelta(days=3, hours=9, minutes=7, seconds=22), "3 days 9 hours 7 minutes 22 seconds"),
    (timedelta(hours=9, minutes=7, seconds=15), "9 hours 7 minutes 15 seconds"),
    (timedelta(minutes=7, seconds=15), "7 minutes 15 seconds"),
    (timedelta(seconds=15, milliseconds=250), "15 seconds 250 milliseconds"),
    (timedelta(milliseconds=250), "250 milliseconds"),
    (timedelta(milliseconds=999), "999 milliseconds"),
    (timedelta(days=1), "1 day 0 hours 0 minutes 0 seconds"),
    (timedelta(hours=1), "1 hour 0 minutes 0 seconds"),
    (timedelta(minutes=1), "1 minute 0 seconds"),
    (timedelta(seconds=1), "1 second 0 milliseconds"),
    (timedelta(milliseconds=1), "1 millisecond"),
    (timedelta(days=1, hours=1, minutes=1, seconds=1), "1 day 1 hour 1 minute 1 second"),
    (timedelta(days=2, hours=2, minutes=2, seconds=2), "2 days 2 hours 2 minutes 2 seconds"),
    (timedelta(seconds=2, milliseconds=2), "2 seconds 2 milliseconds"),
    (timedelta(seconds=1, milliseconds=1), "1 second 1 millisecond"),
    (timedelta(days=2, minutes=5), "2 days 0 hours 5 minutes 0 seconds"),
    (timedelta(hours=1, seconds=1), "1 hour 0 minutes 1 second"),
    (timedelta(seconds=59, milliseconds=999), "59 seconds 999 milliseconds"),
    (timedelta(seconds=60), "1 minute 0 seconds"),
    (timedelta(minutes=1, milliseconds=999), "1 minute 0 seconds"),
    (timedelta(seconds=1, microseconds=999_999), "1 second 999 milliseconds"),
    (timedelta(milliseconds=1, microseconds=999), "1 millisecond"),
    (timedelta(days=400), "400 days 0 hours 0 minutes 0 seconds"),
    (timedelta(days=1) - timedelta(microseconds=1), "23 hours 59 minutes 59 seconds"),
])
def test_format_time_remaining(remaining, expected):
    assert timefmt.format_time_remaining(remaining) == expected


def _time_remaining_by_arithmetic(remaining: timedelta) -> str:
    """The rule written the plain way (whole milliseconds, then divmod), to check the fast
    one against."""
    total_ms = remaining // timedelta(milliseconds=1)
    if total_ms <= 0:
        return "No time remaining"

    def plural(n, unit):
        return f"{n} {unit}" if n == 1 else f"{n} {unit}s"

    days, rest = divmod(total_ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if total_ms < 1000:
        return plural(millis, "millisecond")
    if total_ms < 60_000:
        return f"{plural(seconds, 'second')} {plural(millis, 'millisecond')}"
    units = [(days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")]
    while units[0][0] == 0:
        units.pop(0)
    return " ".join(plural(n, unit) for n, unit in units)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.timedeltas(), st.integers(-10**8, 10**9).map(
    lambda us: timedelta(microseconds=us))))
def test_format_time_remaining_agrees_with_the_plain_arithmetic(remaining):
    assert timefmt.format_time_remaining(remaining) == _time_remaining_by_arithmetic(remaining)


@pytest.mark.parametrize("remaining", [timedelta(0), timedelta(microseconds=-1),
                                       timedelta(seconds=-1), timedelta(days=-3),
                                       timedelta(microseconds=999)])
def test_format_time_remaining_none_left(remaining):
    assert timefmt.format_time_remaining(remaining) == "No time remaining"


@pytest.mark.parametrize(("remaining", "expected"), [
    (timedelta(seconds=899), "00:14:59"),
    (timedelta(seconds=899, microseconds=999_999), "00:14:59"),
    (timedelta(seconds=900), "00:15:00"),
    (timedelta(seconds=1), "00:00:01"),
    (timedelta(0), "00:00:00"),
    (timedelta(seconds=-30), "00:00:00"),
    (timedelta(hours=23, minutes=59, seconds=59), "23:59:59"),
    (timedelta(days=1), "1 day, 00:00:00"),
    (timedelta(days=1, seconds=1), "1 day, 00:00:01"),
    (timedelta(days=2, hours=1, minutes=2, seconds=3), "2 days, 01:02:03"),
    (timedelta(days=10, hours=23), "10 days, 23:00:00"),
])
def test_format_expires_in(remaining, expected):
    assert timefmt.format_expires_in(remaining) == expected


# -- configuration (production's refusals: test_config_production.py) -----------------------

GOOD_SECRET = "s" * 32


def env(**values: str) -> dict[str, str]:
    return {"DATABASE_URL": "postgresql:///widgetsvc", "SECRET_KEY": GOOD_SECRET, **values}


def config_error(**values: str) -> str:
    with pytest.raises(ConfigError) as exc:
        Config.from_env(env(**values))
    return str(exc.value)


def test_production_is_the_default_environment():
    config = Config.from_env(env())
    assert config.environment == "production"
    assert config.is_production
    assert config.bcrypt_rounds == 12
    assert config.token_lifetime == 900
    assert config.token_leeway == 10
    assert config.max_body_bytes == 65536
    assert config.user_realm == "registered_users@mydomain.com"
    assert config.admin_realm == "admin_users@mydomain.com"


def test_tools_that_sign_nothing_may_run_without_a_secret():
    environ = env(SECRET_KEY="")
    assert Config.from_env(environ, require_secret=False).secret_key == ""


@pytest.mark.parametrize("environment", ["prod", "staging", "dev"])
def test_an_unknown_environment_is_refused(environment):
    assert config_error(WIDGETSVC_ENV=environment) == \
        f"WIDGETSVC_ENV={environment}: unknown environment (production, development, test)"


@pytest.mark.parametrize(("values", "message"), [
    ({"DATABASE_URL": ""}, "DATABASE_URL=: not set (a libpq URL such as "
                          "postgresql://user@host:5432/dbname)"),
    ({"BCRYPT_ROUNDS": "3", "WIDGETSVC_ENV": "test"}, "BCRYPT_ROUNDS=3: out of range (4 to 31)"),
    ({"BCRYPT_ROUNDS": "32"}, "BCRYPT_ROUNDS=32: out of range (4 to 31)"),
    ({"BCRYPT_ROUNDS": "twelve"}, "BCRYPT_ROUNDS=twelve: not a whole number (4 to 31)"),
    ({"TOKEN_LIFETIME": "0"}, "TOKEN_LIFETIME=0: below 1 (seconds, at least 1)"),
    ({"TOKEN_LIFETIME": "15m"}, "TOKEN_LIFETIME=15m: not a whole number (seconds, at least 1)"),
    ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "4"},
     "DB_POOL_MIN=5: more than DB_POOL_MAX=4 (1 to DB_POOL_MAX)"),
    ({"DB_POOL_MIN": "0"}, "DB_POOL_MIN=0: below 1 (1 to DB_POOL_MAX)"),
])
def test_meaningless_settings_are_refused(values, message):
    assert config_error(**values) == message


def test_settings_are_read_from_the_environment():
    config = Config.from_env(env(
        TOKEN_LIFETIME="60", TOKEN_LEEWAY="0", BCRYPT_ROUNDS=" 13 ", USER_REALM="u@x.org",
        ADMIN_REALM="a@x.org", DB_POOL_MIN="1", DB_POOL_MAX="8", DB_POOL_TIMEOUT_MS="1500",
        DB_STATEMENT_TIMEOUT_MS="100", LOG_LEVEL="debug",
    ))
    assert (config.token_lifetime, config.token_leeway, config.bcrypt_rounds) == (60, 0, 13)
    assert (config.user_realm, config.admin_realm) == ("u@x.org", "a@x.org")
    assert (config.pool_min_size, config.pool_max_size, config.pool_timeout) == (1, 8, 1.5)
    assert config.statement_timeout_ms == 100
    assert config.log_level == "DEBUG"


def test_the_secret_never_appears_in_the_repr():
    config = Config.from_env(env(SECRET_KEY="a-very-secret-value-nobody-should-see"))
    assert "a-very-secret-value" not in repr(config)


# -- the named-query loader ------------------------------------------------------------------

def write(directory, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_load_queries_reads_named_blocks(tmp_path):
    write(tmp_path, "a.sql", (
        "-- a header comment, not part of any query\n"
        "-- name: first_query\n"
        "-- a comment that belongs to the query\n"
        "SELECT 1;\n"
        "\n"
        "--name:second_query\n"
        "SELECT *\n"
        "FROM t\n"
        "WHERE x = %(x)s;\n"
    ))
    write(tmp_path, "b.sql", "-- name: third\nDELETE FROM t;\n")
    write(tmp_path, "notes.txt", "-- name: ignored\nSELECT 0;\n")
    assert load_queries(tmp_path) == {
        "first_query": "-- a comment that belongs to the query\nSELECT 1;",
        "second_query": "SELECT *\nFROM t\nWHERE x = %(x)s;",
        "third": "DELETE FROM t;",
    }


def test_load_queries_of_an_empty_directory(tmp_path):
    assert load_queries(tmp_path) == {}


def test_load_queries_of_a_file_without_names(tmp_path):
    write(tmp_path, "empty.sql", "-- only a comment\n")
    assert load_queries(tmp_path) == {}


@pytest.mark.parametrize(("files", "message"), [
    ({"stray.sql": "SELECT 1;\n-- name: q\nSELECT 2;\n"},
     "stray.sql: SQL outside a '-- name:' block"),
    ({"a.sql": "-- name: q\nSELECT 1;\n-- name: q\nSELECT 2;\n"},
     "query 'q' is defined twice (a.sql)"),
    ({"a.sql": "-- name: q\nSELECT 1;\n", "b.sql": "-- name: q\nSELECT 2;\n"},
     "query 'q' is defined twice (b.sql)"),
    ({"a.sql": "-- name: empty\n\n-- name: full\nSELECT 1;\n"},
     "query 'empty' in a.sql is empty"),
], ids=["stray-sql", "duplicate-in-file", "duplicate-across-files", "empty-block"])
def test_load_queries_rejects_malformed_files(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ValueError) as exc:
        load_queries(tmp_path)
    assert str(exc.value) == message


def test_load_queries_only_takes_lower_case_names_on_their_own_line(tmp_path):
    write(tmp_path, "a.sql", "-- name: good\nSELECT 1; -- name: inline\n-- name: Bad\nSELECT 2;\n")
    assert load_queries(tmp_path) == {
        "good": "SELECT 1; -- name: inline\n-- name: Bad\nSELECT 2;",
    }


def test_the_real_queries_load():
    queries = load_queries(QUERIES_DIR)
    assert {"insert_user", "user_by_email", "authenticate", "revoke_token",
            "purge_revoked_tokens"} <= set(queries)
    testing = load_queries(SQL_DIR / "testing")
    assert {"reset_all", "auth_delete_user_by_email", "auth_set_admin_by_email",
            "auth_revoked_tokens"} <= set(testing)


# From 2 Jan 1000: in UTC every moment is then in a four-digit year, which is all strftime's
# %Y can be compared with (it writes 999, not 0999).
@settings(max_examples=300)
@given(moment=st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 31),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                      timezone(timedelta(hours=9, minutes=30))])))
def test_hand_written_formats_match_strftime(moment):
    in_utc = moment.astimezone(UTC)
    assert timefmt.format_date(moment) == in_utc.strftime("%m/%d/%y %I:%M:%S %p UTC")
    assert timefmt.format_iso8601(moment) == in_utc.replace(microsecond=0,
                                                            tzinfo=None).isoformat()
    assert timefmt.format_rfc822(moment) == in_utc.strftime("%a, %d %b %Y %H:%M:%S -0000")


def test_json_encoder_is_compact_utf8_and_falls_back_for_huge_integers():
    from widgetsvc import jsonio

    assert jsonio.dumps({"a": "é", "b": [1, True, None]}) == '{"a":"é","b":[1,true,null]}'.encode()
    huge = 10**40
    assert json.loads(jsonio.dumps({"page": huge})) == {"page": huge}


@pytest.mark.parametrize("value", ["a@foo.localhost", "a@LOCALHOST.", "a@x.localhost."])
def test_emails_at_localhost_names_are_refused(value):
    with pytest.raises(InvalidValue):
        check_email(value)


@pytest.mark.parametrize("value", ["http://foo.localhost./", "http://localhost./x",
                                   "https://A.LocalHost/"])
def test_urls_at_localhost_names_are_refused_with_the_reason(value):
    with pytest.raises(InvalidValue) as exc:
        check_url(value)
    assert str(exc.value) == f"{value} is not a valid URL. Localhost is not allowed"


def test_an_unknown_log_level_is_refused():
    assert config_error(LOG_LEVEL="verbose") == \
        "LOG_LEVEL=VERBOSE: unknown level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"
