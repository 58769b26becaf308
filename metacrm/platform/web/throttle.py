"""Slowing down password guessing: per-username and per-IP failure counters with a lockout
window that doubles with every failure past a free allowance.

Kept in process memory: a guesser spread over several app servers gets a few more tries,
which the exponential window still makes worthless; nothing here must survive a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class Policy:
    free_attempts: int  # failures allowed before any lockout
    base_seconds: float  # the first lockout; doubles per further failure
    max_seconds: float  # the longest lockout
    forget_seconds: float  # a key with no failure for this long starts over


USERNAME_POLICY = Policy(free_attempts=5, base_seconds=15, max_seconds=900, forget_seconds=3600)
IP_POLICY = Policy(free_attempts=30, base_seconds=15, max_seconds=900, forget_seconds=3600)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 username_policy: Policy = USERNAME_POLICY, ip_policy: Policy = IP_POLICY,
                 max_keys: int = 100_000):
        self.clock = clock
        self.policies = {"user": username_policy, "ip": ip_policy}
        self.max_keys = max_keys
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, ip: str) -> list[tuple[str, str]]:
        return [("user", username.strip().lower()), ("ip", ip or "?")]

    def wait_seconds(self, username: str, ip: str) -> int:
        """Seconds until another attempt is allowed for this username and address (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, ip):
                entry = self._entries.get(key)
                if entry is not None:
                    wait = max(wait, entry.locked_until - now)
        return int(wait + 0.999) if wait > 0 else 0

    def failed(self, username: str, ip: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._entries) > self.max_keys:
                self._forget_old(now)
            for key in self._keys(username, ip):
                policy = self.policies[key[0]]
                entry = self._entries.get(key)
                if entry is None or now - entry.last > policy.forget_seconds:
                    entry = self._entries[key] = _Entry()
                entry.failures += 1
                entry.last = now
                extra = entry.failures - policy.free_attempts
                if extra > 0:
                    seconds = min(policy.base_seconds * 2 ** (extra - 1), policy.max_seconds)
                    entry.locked_until = now + seconds

    def succeeded(self, username: str, ip: str) -> None:
        """A right password clears the username's counter (the address keeps its record)."""
        with self._lock:
            self._entries.pop(self._keys(username, ip)[0], None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.last > self.policies[k[0]].forget_seconds]:
            del self._entries[key]
        if len(self._entries) > self.max_keys:  # still full: drop the oldest half
            for key, _ in sorted(self._entries.items(), key=lambda kv: kv[1].last)[: len(self._entries) // 2]:
                del self._entries[key]
