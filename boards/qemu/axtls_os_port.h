// axTLS port header for bare-metal newlib builds that compile only axTLS's AES (for cryptolib).
// The stock extmod/axtls-include/axtls_os_port.h includes <arpa/inet.h>, which newlib lacks.
#ifndef AMI_AXTLS_OS_PORT_H
#define AMI_AXTLS_OS_PORT_H

#include <stdint.h>
#include <errno.h>

// aes.c converts words to big-endian with these; Cortex-M runs little-endian.
#define htonl(x) __builtin_bswap32(x)
#define ntohl(x) __builtin_bswap32(x)

#define TTY_FLUSH()

#endif // AMI_AXTLS_OS_PORT_H
