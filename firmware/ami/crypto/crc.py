"""CRC-16/KERMIT, the IEEE 802.15.4 frame check sequence used as the radio link check."""

from array import array


def _make_table():
    table = array("H")  # 512 bytes; a tuple of ints would take 2 KB of a board's heap
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc16(data, crc=0):
    """CRC-16/KERMIT (poly 0x1021 reflected, init 0, no final xor) of data.

    Pass a previous result as crc to continue over a further chunk.
    """
    table = _TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc
