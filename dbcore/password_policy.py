"""One password policy for every database credential: the generated master password and the
passwords rotation gives the master and the login roles.

RDS forbids '/', '@', '"' and space in the master password. We also leave out quote, backslash,
'$', '`', '&' and ';', so a value survives conninfo strings, URLs and shells unquoted.
"""

from __future__ import annotations

import secrets
import string

LENGTH = 40
SPECIALS = "!#%^*()-_=+[]{}<>:?.,~"
ALPHABET = string.ascii_letters + string.digits + SPECIALS
MIN_EACH_CLASS = 2
"""At least this many lowercase, uppercase, digit and special characters."""


def meets_policy(password: str) -> bool:
    """True if `password` has the policy's length, alphabet and character classes."""
    classes = (str.islower, str.isupper, str.isdigit, lambda c: c in SPECIALS)
    return (
        len(password) >= LENGTH
        and all(c in ALPHABET for c in password)
        and all(sum(1 for c in password if is_class(c)) >= MIN_EACH_CLASS for is_class in classes)
    )


def generate(length: int = LENGTH) -> str:
    """A new password from the OS CSPRNG that meets the policy."""
    if length < LENGTH:
        raise ValueError(f"passwords are at least {LENGTH} characters")
    while True:
        password = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if meets_policy(password):
            return password
