#pragma once
#include <btrfsutil.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/btrfs.h>
#include <linux/fs.h>

// Flag macros as constants Swift can see without guessing their bit values.
static const int RAST_BTRFS_SNAPSHOT_RECURSIVE = BTRFS_UTIL_CREATE_SNAPSHOT_RECURSIVE;
static const int RAST_BTRFS_SNAPSHOT_READ_ONLY = BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY;
static const int RAST_BTRFS_DELETE_RECURSIVE = BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE;
static const int RAST_BTRFS_ITERATOR_POST_ORDER = BTRFS_UTIL_SUBVOLUME_ITERATOR_POST_ORDER;

/// Writes the filesystem UUID of the btrfs filesystem holding `path` to `fsid` (16 bytes).
/// libbtrfsutil has no public call for it; rename needs it to tell filesystems apart,
/// because st_dev and statfs' f_fsid differ between subvolumes of one filesystem.
/// Returns 0, or -1 with errno set.
static inline int rast_btrfs_fsid(const char *path, uint8_t *fsid) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd < 0) return -1;
    struct btrfs_ioctl_fs_info_args args;
    memset(&args, 0, sizeof(args));
    int rc = ioctl(fd, BTRFS_IOC_FS_INFO, &args);
    int saved = errno;
    close(fd);
    if (rc < 0) { errno = saved; return -1; }
    memcpy(fsid, args.fsid, 16);
    return 0;
}

/// rename(2) that refuses to replace an existing destination (RENAME_NOREPLACE).
/// Swift's Glibc module is built without _GNU_SOURCE and hides renameat2.
extern int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
static inline int rast_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}
