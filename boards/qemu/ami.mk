# Additions shared by the project's emulated boards (included by each board's
# mpconfigboard.mk after the stock board's file): cryptolib with axTLS's AES alone, littlefs v2,
# and a wall clock of sorts for littlefs's timestamps.
AMI_BOARDS_DIR := $(abspath $(BOARD_DIR)/..)

# cryptolib without the ssl module (which needs sockets): only axTLS's AES is compiled.
CFLAGS += -DMICROPY_PY_CRYPTOLIB=1 -DMICROPY_SSL_AXTLS=1
CFLAGS += -I$(TOP)/lib/axtls/ssl -I$(TOP)/lib/axtls/crypto -I$(TOP)/extmod/axtls-include
# newlib has no <arpa/inet.h>, which the stock axTLS port header wants.
CFLAGS += -DCONFIG_AXTLS_OS_PORT_H='"$(AMI_BOARDS_DIR)/axtls_os_port.h"'
SRC_C += lib/axtls/crypto/aes.c
$(BUILD)/lib/axtls/crypto/aes.o: CFLAGS += -Wno-all -Wno-unused-parameter -Wno-uninitialized \
	-Wno-sign-compare -Wno-old-style-definition

MICROPY_VFS_LFS2 = 1

# mp_hal_time_ns, which littlefs needs to link.
SRC_C += $(AMI_BOARDS_DIR)/ami_hal.c
