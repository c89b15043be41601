"""Access tokens: the store of the configured ones, and how a token is named in logs."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from ....settings import MIN_TOKEN_LENGTH, OPERATOR, VIEWER, SettingsError, token_entry

__all__ = ["TokenStore", "token_identity"]

log = structlog.get_logger("zapjobs_sse.server.http.auth.tokens")


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def token_identity(token_id: str) -> str:
    """How logs and stream limits name the holder of a token: a prefix of its keyed digest."""
    return f"token:{token_id[:12]}"


def _roles(key: bytes, entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Token id -> role; a token listed twice with two roles is a viewer (the safer one)."""
    roles: dict[str, str] = {}
    for role, token in entries:
        token_id = _mac(key, token)
        roles[token_id] = VIEWER if roles.get(token_id, role) != role else role
    return roles


class TokenStore:
    """The configured tokens, known only by keyed digests, each with its role (a line
    `operator <token>` or `viewer <token>`; a bare token is a viewer); the file is re-read
    on change.

    Removing a token from the file revokes it at once: bearer requests fail and the
    sessions and streams opened with it end (access.access_watch). Changing its role
    changes what its sessions may do at once too.
    """

    def __init__(
        self,
        env_tokens: Iterable[str],
        path: str | None,
        key: bytes,
        *,
        recheck: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._env_roles = _roles(key, (token_entry(e, "ZAPJOBS_TOKENS") for e in env_tokens))
        self._env_ids = frozenset(self._env_roles)
        self._path = Path(path) if path else None
        self._recheck = recheck
        self._clock = clock
        self._checked_at = -math.inf
        self._file_state: tuple[int, int, int, int] | None = None
        self._file_ids: frozenset[str] = frozenset()
        self._ids: tuple[str, ...] = tuple(self._env_ids)
        self._role_of: dict[str, str] = dict(self._env_roles)
        if self._path is not None:
            self._load(strict=True)

    def _load(self, *, strict: bool) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            state = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if state == self._file_state:
                return
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            if strict:
                raise SettingsError(f"--tokens-file: cannot read {self._path}: {error}") from None
            if self._file_state is not None or self._file_ids:
                log.error("tokens_file_unreadable", path=str(self._path), error=str(error))
            # Fail closed: a file that is gone holds no tokens.
            self._file_state, self._file_ids = None, frozenset()
            self._ids = tuple(self._env_ids)
            self._role_of = dict(self._env_roles)
            return
        lines = [line.strip() for line in text.splitlines()]
        entries = []
        for line in lines:
            if not line or line.startswith("#"):
                continue
            try:
                entries.append(token_entry(line, f"--tokens-file {self._path}"))
            except SettingsError:
                if strict:
                    raise
                log.warning("tokens_file_line_ignored", path=str(self._path))
        tokens = [token for _, token in entries]
        short = [token for token in tokens if len(token) < MIN_TOKEN_LENGTH]
        if short:
            if strict:
                raise SettingsError(
                    f"--tokens-file: every token needs at least {MIN_TOKEN_LENGTH} characters"
                )
            log.warning("tokens_file_short_tokens_ignored", path=str(self._path), count=len(short))
        valid = [(role, token) for role, token in entries if len(token) >= MIN_TOKEN_LENGTH]
        if strict and not valid and not self._env_ids:
            raise SettingsError(f"--tokens-file: {self._path} holds no token")
        file_roles = _roles(self._key, valid)
        self._file_state = state
        self._file_ids = frozenset(file_roles)
        self._ids = tuple(self._env_ids | self._file_ids)
        self._role_of = {}
        for token_id in self._ids:
            held = {self._env_roles.get(token_id), file_roles.get(token_id)} - {None}
            self._role_of[token_id] = OPERATOR if held == {OPERATOR} else VIEWER
        if not strict:
            log.info("tokens_file_reloaded", path=str(self._path), tokens=len(self._file_ids))

    def refresh(self) -> None:
        """Re-read the file if it changed (looked at no more often than every `recheck` s)."""
        if self._path is None:
            return
        now = self._clock()
        if now - self._checked_at < self._recheck:
            return
        self._checked_at = now
        self._load(strict=False)

    def match(self, candidate: str) -> str | None:
        """The id of the token equal to `candidate`, comparing in constant time."""
        self.refresh()
        candidate_id = _mac(self._key, candidate)
        found = None
        for token_id in self._ids:  # no early exit: every comparison is made
            if hmac.compare_digest(candidate_id, token_id):
                found = token_id
        return found

    def holds(self, token_id: str) -> bool:
        """True while the token with this id is still configured."""
        self.refresh()
        return any(hmac.compare_digest(token_id, known) for known in self._ids)

    def role(self, token_id: str) -> str | None:
        """The role of a configured token (None once it is removed)."""
        self.refresh()
        return self._role_of.get(token_id)
