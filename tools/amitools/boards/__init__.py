"""MicroPython boards: building the emulated Cortex-M boards, packaging the firmware for
boards (package.json, ROMFS images, frozen manifests) and running it under QEMU."""
