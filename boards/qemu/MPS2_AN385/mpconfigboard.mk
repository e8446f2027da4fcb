# The stock MPS2-AN385 (Cortex-M3) board plus the project's additions.
include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk
include $(BOARD_DIR)/../ami.mk
