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


# Boards have no environment: a boot script may put settings here for getenv to find.
board_env = {}

try:
    from os import getenv
except ImportError:  # bare-metal `os` has no getenv

    def getenv(name, default=None):
        """The value a boot script put in board_env, else default."""
        return board_env.get(name, default)
