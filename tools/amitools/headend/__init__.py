"""The head end: device registry, join server, collection engine and command API."""

from amitools.headend.node import HeadEnd, HeadEndIdentity
from amitools.headend.registry import Registry

__all__ = ["HeadEnd", "HeadEndIdentity", "Registry"]
