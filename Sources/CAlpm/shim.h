#pragma once
#include <alpm.h>
#include <alpm_list.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

// libalpm's log callback gets a printf format and a va_list. Swift can hand the va_list on
// (as CVaListPointer) but cannot size the output first, so the formatting happens here:
// vsnprintf on a copy measures, vsnprintf formats. Returns malloc'd text the caller frees.
static inline char *rast_alpm_format_log(const char *format, va_list args) {
    va_list measure;
    va_copy(measure, args);
    int length = vsnprintf(NULL, 0, format, measure);
    va_end(measure);
    if (length < 0) return NULL;
    char *text = malloc((size_t)length + 1);
    if (text == NULL) return NULL;
    vsnprintf(text, (size_t)length + 1, format, args);
    return text;
}
