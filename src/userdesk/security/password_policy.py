"""The workspace's password policy: each rule judged on its own, for errors and live feedback.

Composition rules (lowercase, uppercase, digit, symbol) are off by default, as NIST SP
800-63B advises; length, the common-password list and personal data are on. The list is the
30,000 most common passwords of zxcvbn's frequency lists (drawn from breach corpora), which
ships with the zxcvbn package.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

HARD_MAX_LENGTH = 1024  # the longest password any policy may allow (hashing cost stays bounded)
LIMIT_MIN_LENGTH = 8  # the shortest minimum a workspace may set (NIST SP 800-63B)
LIMIT_MAX_LENGTH = 128  # the maximum length may not be set below this
PERSONAL_MIN = 3  # shorter names or email parts are not looked for inside passwords


@cache
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def _strip_decoration(password: str) -> str:
    """'Summer2024!' and '!!password123' are their common word with digits and symbols added."""
    return password.strip("0123456789!@#$%^&*()-_=+.,;:?/\\|~`'\" ").casefold()


def is_common(password: str) -> bool:
    words = common_passwords()
    folded = password.casefold()
    stripped = _strip_decoration(password)
    return folded in words or (len(stripped) >= 4 and stripped in words)


def _is_symbol(char: str) -> bool:
    return not char.isalnum() and not unicodedata.category(char).startswith(("C", "Z"))


def _longest_run(password: str) -> int:
    longest = run = 0
    previous = None
    for char in password:
        run = run + 1 if char == previous else 1
        previous = char
        longest = max(longest, run)
    return longest


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    message: str


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12
    max_length: int = 128
    max_repeated: int | None = None
    require_lowercase: bool = False
    require_uppercase: bool = False
    require_digit: bool = False
    require_symbol: bool = False
    reject_common: bool = True
    reject_personal: bool = True

    @classmethod
    def of(cls, workspace: Any) -> PasswordPolicy:
        return cls(
            min_length=workspace.password_min_length,
            max_length=workspace.password_max_length,
            max_repeated=workspace.password_max_repeated,
            require_lowercase=workspace.password_require_lowercase,
            require_uppercase=workspace.password_require_uppercase,
            require_digit=workspace.password_require_digit,
            require_symbol=workspace.password_require_symbol,
            reject_common=workspace.password_reject_common,
            reject_personal=workspace.password_reject_personal,
        )

    def check(
        self, password: str, *, username: str | None = None, email: str | None = None
    ) -> list[RuleResult]:
        """Every rule of the policy, passed or not, in a stable order."""
        length = len(password)
        results = [
            RuleResult(
                "min_length",
                length >= self.min_length,
                f"at least {self.min_length} characters",
            ),
            RuleResult(
                "max_length",
                length <= self.max_length,
                f"at most {self.max_length} characters",
            ),
        ]
        if self.max_repeated is not None:
            results.append(
                RuleResult(
                    "max_repeated",
                    _longest_run(password) <= self.max_repeated,
                    f"no character more than {self.max_repeated} times in a row",
                )
            )
        for enabled, rule, test, message in (
            (self.require_lowercase, "lowercase", str.islower, "a lowercase letter"),
            (self.require_uppercase, "uppercase", str.isupper, "an uppercase letter"),
            (self.require_digit, "digit", str.isdigit, "a digit"),
            (self.require_symbol, "symbol", _is_symbol, "a symbol such as ! or #"),
        ):
            if enabled:
                results.append(RuleResult(rule, any(test(c) for c in password), message))
        if self.reject_common:
            results.append(
                RuleResult(
                    "common",
                    not is_common(password),
                    "not a common or breached password",
                )
            )
        if self.reject_personal:
            results.append(
                RuleResult(
                    "personal",
                    not _contains_personal(password, username, email),
                    "does not contain the username or email address",
                )
            )
        return results

    def failures(
        self, password: str, *, username: str | None = None, email: str | None = None
    ) -> list[RuleResult]:
        return [r for r in self.check(password, username=username, email=email) if not r.passed]

    def describe(self) -> str:
        return "; ".join(r.message for r in self.check("", username=None, email=None))


def _contains_personal(password: str, username: str | None, email: str | None) -> bool:
    folded = password.casefold()
    pieces: list[str] = []
    if username:
        pieces.append(username)
    if email:
        local, _, _domain = email.partition("@")
        pieces.extend([email, local])
    return any(len(p) >= PERSONAL_MIN and p.casefold() in folded for p in pieces)
