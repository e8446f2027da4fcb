"""What goes on a board: package.json, manifest.py and the ROMFS staging agree on the board
files, and leave the host-only modules off; the qemu command line puts ROMFS images where
each board mounts them."""

import json
import subprocess
import sys
from pathlib import Path

from amitools import FIRMWARE, REPO
from amitools.boards import qemu
from amitools.boards.build import BOARDS
from amitools.boards.files import HOST_ONLY, board_files, package_json


def test_package_json_is_current():
    assert (REPO / "package.json").read_text() == package_json(), "run make package-json"


def test_board_files_leave_host_only_modules_off():
    files = board_files()
    assert "ami/meter.py" in files and "ami/crypto/portable.py" in files
    for name in HOST_ONLY:
        assert (FIRMWARE / name).exists()
        assert name not in files
    urls = json.loads(package_json())["urls"]
    assert [dest for dest, _ in urls] == files
    for dest, src in urls:
        assert (REPO / src).is_file() and src.endswith(dest)


def test_manifest_freezes_exactly_the_board_files(tmp_path):
    """MicroPython's own manifest reader (from the vendored tree) lists what a frozen
    build would contain."""
    from amitools.boards.build import source_tree

    tools = source_tree() / "tools"
    code = (
        f"import sys; sys.path.insert(0, {str(tools)!r})\n"
        "import manifestfile as m\n"
        f"mf = m.ManifestFile(m.MODE_FREEZE, {{'MPY_DIR': {str(tools.parent)!r}}})\n"
        f"mf.execute({str(REPO / 'manifest.py')!r})\n"
        "print('\\n'.join(sorted(f.target_path for f in mf.files())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == board_files()


def test_romfs_image_goes_to_each_boards_partition(tmp_path):
    image = tmp_path / "x.romfs"
    image.write_bytes(b"\0" * 16)
    for board in BOARDS.values():
        cmd = qemu.qemu_command(board, Path("fw.elf"), image)
        assert f"loader,file={image},addr={board.romfs_addr:#x},force-raw=on" in cmd
        assert cmd[cmd.index("-machine") + 1] == board.machine
    image.write_bytes(b"\0" * (0x400000 + 1))
    try:
        qemu.qemu_command(BOARDS["an385"], Path("fw.elf"), image)
    except ValueError:
        return
    raise AssertionError("an image larger than the partition was accepted")
