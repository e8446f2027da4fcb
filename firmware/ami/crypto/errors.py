"""Typed failures of the crypto layer."""


class AuthError(Exception):
    """An authentication tag or integrity check did not match: the input is not genuine."""


class InvalidKey(ValueError):
    """A key or public point is malformed, off the curve or the point at infinity."""
