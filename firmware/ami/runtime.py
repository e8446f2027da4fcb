"""The one place where MicroPython and CPython differ for the firmware core.

Everything here is chosen by feature checks, never by asking which runtime this is, so a
board port with a different set of modules picks the right branch by itself.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        """Stand-in for micropython.const: the value itself."""
        return value


try:
    from os import getenv
except ImportError:  # boards: no environment

    def getenv(name, default=None):
        """Boards have no environment variables."""
        return default
