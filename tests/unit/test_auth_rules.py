"""The rules of authentication that need no server: settings, cookies, redirects, throttling."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapjobs_sse.cli import build_parser, main
from zapjobs_sse.server.http.auth.authenticator import safe_next
from zapjobs_sse.server.http.auth.sessions import SessionCodec
from zapjobs_sse.server.http.auth.throttle import SignInThrottle
from zapjobs_sse.server.http.auth.tokens import TokenStore
from zapjobs_sse.settings import Settings, SettingsError, is_loopback_host

TOKEN = "x" * 24


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_zapjobs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ZAPJOBS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.4", False),
        ("dashboard.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_serving_everyone_without_auth_refuses_to_start_and_says_how_to_fix_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--auth token" in message and "ZAPJOBS_TOKENS" in message
    assert "--insecure-no-auth" in message
    Settings(host="0.0.0.0", insecure_no_auth=True).validate()
    Settings(host="0.0.0.0", auth="token", tokens=TOKEN).validate()


def test_tokens_are_never_command_line_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--auth", "token", "--tokens", TOKEN])
    assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--session-secret", TOKEN])
    assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = capsys.readouterr().out
    assert "ZAPJOBS_TOKENS" in help_text and "ZAPJOBS_SESSION_SECRET" in help_text
    assert "--tokens-file" in help_text and "--tokens " not in help_text
    assert TOKEN not in repr(Settings(auth="token", tokens=TOKEN, session_secret=TOKEN))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth": "token"}, "ZAPJOBS_TOKENS"),
        ({"auth": "token", "tokens": "short"}, "16 characters"),
        ({"auth": "proxy"}, "--trusted-proxies"),
        ({"auth": "proxy", "trusted_proxies": "10.0.0.300/8"}, "--trusted-proxies"),
        ({"cors_origins": "*"}, "--cors-origins"),
        ({"cors_origins": "https://a.example/path"}, "--cors-origins"),
        ({"proxy_user_header": "X User"}, "--proxy-user-header"),
        ({"max_streams": 0}, "--max-streams"),
        ({"session_lifetime": 0}, "--session-lifetime"),
    ],
)
def test_bad_security_settings_are_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**overrides).validate()  # type: ignore[arg-type]


def test_cors_origins_are_normalised() -> None:
    settings = Settings(cors_origins="https://A.example:8443, http://b.example/")
    assert settings.cors_origin_list == ("https://a.example:8443", "http://b.example")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/zapjobs/runs?status=Failed", "/zapjobs/runs?status=Failed"),
        ("/zapjobs/", "/zapjobs/"),
        ("/zapjobs", "/zapjobs"),
        (None, "/zapjobs/"),
        ("", "/zapjobs/"),
        ("//evil.example", "/zapjobs/"),
        ("/\\evil.example", "/zapjobs/"),
        ("https://evil.example/zapjobs/", "/zapjobs/"),
        ("/zapjobs/../x", "/zapjobs/"),
        ("/zapjobsx", "/zapjobs/"),
        ("/zapjobs/a b", "/zapjobs/"),
        ("/zapjobs/\tx", "/zapjobs/"),
        ("/zapjobs/login", "/zapjobs/"),
        ("/zapjobs/#x", "/zapjobs/"),
        ("/zapjobs/caf\u00e9", "/zapjobs/"),
        ("/zapjobs/runs?job_type=caf%C3%A9", "/zapjobs/runs?job_type=caf%C3%A9"),
    ],
)
def test_next_is_a_local_dashboard_path(value: str | None, expected: str) -> None:
    assert safe_next(value, "/zapjobs") == expected


def test_next_under_a_root_base_path() -> None:
    assert safe_next("/runs", "") == "/runs"
    assert safe_next("//evil.example/", "") == "/"


def test_session_cookies_expire_and_carry_no_token() -> None:
    clock = Clock()
    codec = SessionCodec(b"k" * 32, 60.0, clock=clock)
    value, expires = codec.issue("abc123", "viewer")
    assert expires == 1060 and "x" not in value
    assert codec.read(value) == ("abc123", "viewer", 1060)
    clock.now = 1059.9
    assert codec.read(value) is not None
    clock.now = 1060.0
    assert codec.read(value) is None
    other = SessionCodec(b"j" * 32, 60.0, clock=Clock())
    assert other.read(value) is None


def test_sign_in_throttle_counts_failures_per_address_in_a_window() -> None:
    clock = Clock()
    throttle = SignInThrottle(2, window=60.0, clock=clock)
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None
    clock.now += 10
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 50
    assert throttle.retry_after("10.0.0.2") is None
    clock.now += 50.5
    assert throttle.retry_after("10.0.0.1") is None


def test_sign_in_throttle_memory_is_bounded() -> None:
    throttle = SignInThrottle(1, max_addresses=100, clock=Clock())
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._failures) == 100


def test_token_store_reloads_its_file_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n{TOKEN}\n", encoding="utf-8")
    clock = Clock()
    store = TokenStore(["e" * 20], str(path), b"k" * 32, recheck=1.0, clock=clock)
    token_id = store.match(TOKEN)
    assert token_id is not None and store.match("e" * 20) is not None
    assert store.match("y" * 24) is None and store.match("") is None
    path.write_text("z" * 30 + "\n", encoding="utf-8")
    assert store.holds(token_id)  # not looked at again within `recheck`
    clock.now += 1.5
    assert not store.holds(token_id)
    assert store.match("z" * 30) is not None
    path.unlink()
    clock.now += 1.5
    assert store.match("z" * 30) is None
    assert store.match("e" * 20) is not None  # the environment's tokens stay


def test_unusable_tokens_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        TokenStore([], str(tmp_path / "missing"), b"k" * 32)
    (tmp_path / "short").write_text("abc\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="16 characters"):
        TokenStore([], str(tmp_path / "short"), b"k" * 32)
    (tmp_path / "empty").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="holds no token"):
        TokenStore([], str(tmp_path / "empty"), b"k" * 32)
