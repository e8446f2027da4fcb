# The stock MPS2-AN500 (Cortex-M7, double-precision FPU) board plus the project's additions.
include $(TOP)/ports/qemu/boards/MPS2_AN500/mpconfigboard.mk
include $(BOARD_DIR)/../ami.mk
