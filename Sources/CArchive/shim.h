#pragma once
#include <archive.h>
#include <archive_entry.h>
#include <sys/types.h>

// archive_set_error is variadic: Swift passes an already formatted message.
static inline void rast_archive_set_error(struct archive *a, int error_number, const char *message) {
    archive_set_error(a, error_number, "%s", message);
}

// The AE_IF* file type macros are casts, which Swift does not import.
static inline mode_t rast_ae_ifmt(void) { return AE_IFMT; }
static inline mode_t rast_ae_ifreg(void) { return AE_IFREG; }
static inline mode_t rast_ae_ifdir(void) { return AE_IFDIR; }
static inline mode_t rast_ae_iflnk(void) { return AE_IFLNK; }
static inline mode_t rast_ae_ifchr(void) { return AE_IFCHR; }
static inline mode_t rast_ae_ifblk(void) { return AE_IFBLK; }
static inline mode_t rast_ae_ififo(void) { return AE_IFIFO; }
static inline mode_t rast_ae_ifsock(void) { return AE_IFSOCK; }
