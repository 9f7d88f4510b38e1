#pragma once
#include <zlib.h>

// deflateInit2 and inflateInit2 are function-like macros (they pass the library version
// and the stream size for an ABI check), which Swift cannot import.
static inline int rast_deflateInit2(z_streamp strm, int level, int method, int windowBits,
                                    int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}

static inline int rast_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
