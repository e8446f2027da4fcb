"""AMI endpoint security firmware: one package for MicroPython boards, the unix port and CPython."""

VERSION = "0.1.0"
