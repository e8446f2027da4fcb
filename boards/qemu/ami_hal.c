// mp_hal_time_ns for the emulated MPS2 boards, which have no RTC: littlefs stamps files with it.
// It counts from 2000-01-01 (MicroPython's embedded epoch) at boot, as an unset RTC would.
#include "py/mphal.h"

uint64_t mp_hal_time_ns(void) {
    return (uint64_t)mp_hal_ticks_us() * 1000ULL;
}
