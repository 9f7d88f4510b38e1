#pragma once
// Linux kernel interfaces Swift cannot reach directly: variadic ioctl calls with the
// request macros and structures of the loop and block-partition drivers, and mount flags.
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <linux/loop.h>
#include <linux/blkpg.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

// GNU extensions that Swift's Glibc module hides (it is built without _GNU_SOURCE).
extern int pipe2(int fds[2], int flags);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

extern int unshare(int flags);

/// Moves the calling thread into a new mount namespace whose mounts do not propagate back,
/// so that everything mounted afterwards disappears with the process, even after SIGKILL.
static inline int rast_private_mount_namespace(void) {
    if (unshare(0x00020000 /* CLONE_NEWNS */) != 0) return -1;
    return mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL);
}

/// Makes standard output line-buffered, also when it is a pipe or a file.
static inline void rast_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static inline int rast_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
static inline int rast_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

static inline int rast_loop_get_free(int control_fd) {
    return ioctl(control_fd, LOOP_CTL_GET_FREE);
}

/// Binds `backing_fd` to the loop device `loop_fd` in one step (LOOP_CONFIGURE, Linux 5.8+).
static inline int rast_loop_configure(int loop_fd, int backing_fd, uint64_t offset,
                                      uint64_t size_limit, int read_only, int autoclear,
                                      const char *file_name) {
    struct loop_config config;
    memset(&config, 0, sizeof(config));
    config.fd = (uint32_t)backing_fd;
    config.block_size = 0;
    config.info.lo_offset = offset;
    config.info.lo_sizelimit = size_limit;
    config.info.lo_flags = (read_only ? LO_FLAGS_READ_ONLY : 0) | (autoclear ? LO_FLAGS_AUTOCLEAR : 0);
    if (file_name) strncpy((char *)config.info.lo_file_name, file_name, LO_NAME_SIZE - 1);
    return ioctl(loop_fd, LOOP_CONFIGURE, &config);
}

static inline int rast_loop_clear(int loop_fd) {
    return ioctl(loop_fd, LOOP_CLR_FD, 0);
}

/// Tells the kernel about one partition of a whole-disk device (what `partx -a` does).
static inline int rast_blkpg_partition(int disk_fd, int add, int number, int64_t start_bytes,
                                       int64_t length_bytes) {
    struct blkpg_partition part;
    memset(&part, 0, sizeof(part));
    part.pno = number;
    part.start = start_bytes;
    part.length = length_bytes;
    struct blkpg_ioctl_arg arg;
    memset(&arg, 0, sizeof(arg));
    arg.op = add ? BLKPG_ADD_PARTITION : BLKPG_DEL_PARTITION;
    arg.datalen = sizeof(part);
    arg.data = &part;
    return ioctl(disk_fd, BLKPG, &arg);
}

static inline int rast_block_size_bytes(int fd, uint64_t *size) {
    return ioctl(fd, BLKGETSIZE64, size);
}

static inline int rast_block_flush(int fd) {
    return ioctl(fd, BLKFLSBUF, 0);
}

/// Makes a byte range of a block device read as zeros (BLKZEROOUT): the device zeroes it
/// itself where it can (WRITE ZEROES, a hole in a loop device's file), else the kernel writes zeros.
static inline int rast_block_zero_out(int fd, uint64_t start, uint64_t length) {
    uint64_t range[2] = { start, length };
    return ioctl(fd, BLKZEROOUT, range);
}

/// Asks the kernel to read a disk's partition table again (BLKRRPART).
static inline int rast_block_reread_partitions(int fd) {
    return ioctl(fd, BLKRRPART, 0);
}

/// Makes `dest_fd` share `src_fd`'s extents (a reflink); fails on filesystems without it.
static inline int rast_clone_file(int dest_fd, int src_fd) {
    return ioctl(dest_fd, FICLONE, src_fd);
}

extern ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);
static inline ssize_t rast_copy_file_range(int in, int out, size_t len) {
    return copy_file_range(in, NULL, out, NULL, len, 0);
}

static inline long rast_btrfs_super_magic(void) { return BTRFS_SUPER_MAGIC; }

#include <sys/prctl.h>
/// Makes the calling process the reaper of its orphaned descendants (a container's init once
/// `crun create` has exited), so that it can wait for them (prctl is variadic).
static inline int rast_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
/// posix_spawn's POSIX_SPAWN_SETSID (a GNU extension the Glibc module hides).
static inline short rast_spawn_setsid_flag(void) { return 0x80; }

/// The working directory children start in (see SystemSupport's InitialWorkingDirectory):
/// opened with O_PATH (no read permission needed, and fchdir works even if it is removed later).
extern int posix_spawn_file_actions_addfchdir_np(posix_spawn_file_actions_t *actions, int fd);
static inline int rast_open_directory_path(const char *path) { return open(path, __O_PATH | O_DIRECTORY | O_CLOEXEC); }
static inline int rast_spawn_add_fchdir(posix_spawn_file_actions_t *actions, int fd) {
    return posix_spawn_file_actions_addfchdir_np(actions, fd);
}
