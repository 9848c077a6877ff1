// File contents the cheap way, for copy-up: find the data and the holes
// (lseek SEEK_DATA/SEEK_HOLE) so a sparse file stays sparse, share extents
// (FICLONE) or copy inside the kernel (copy_file_range) instead of through
// JavaScript buffers, and allocate or punch ranges (fallocate).
//
// Each is one system call with explicit offsets, never the descriptor's
// position, so calls on a shared descriptor cannot disturb each other.
// Short counts and failures such as ENXIO (no data past the offset),
// EXDEV or EOPNOTSUPP are answers for the caller to act on, not bugs: they
// pass through as errors or counts, unretried.
#include "shim.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace shim {

static napi_value Lseek(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd = -1;
  int64_t offset = 0, whence = 0;
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_int(env, argv[1], "offset", -kMaxSafeInteger, kMaxSafeInteger, &offset) ||
      !arg_int(env, argv[2], "whence", 0, INT32_MAX, &whence)) {
    return nullptr;
  }
  off_t at = lseek(fd, static_cast<off_t>(offset), static_cast<int>(whence));
  if (at < 0) return sys_error(env, errno, "lseek");
  return number(env, at);
}

static napi_value CopyFileRange(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd_in = -1, fd_out = -1;
  int64_t off_in = 0, off_out = 0, len = 0;
  if (!get_args(env, info, 5, argv) || !arg_fd(env, argv[0], "fdIn", &fd_in) ||
      !arg_int(env, argv[1], "offIn", 0, kMaxSafeInteger, &off_in) ||
      !arg_fd(env, argv[2], "fdOut", &fd_out) ||
      !arg_int(env, argv[3], "offOut", 0, kMaxSafeInteger, &off_out) ||
      !arg_int(env, argv[4], "len", 0, kMaxSafeInteger, &len)) {
    return nullptr;
  }
  loff_t in = off_in, out = off_out;
  ssize_t n = copy_file_range(fd_in, &in, fd_out, &out, static_cast<size_t>(len), 0);
  if (n < 0) return sys_error(env, errno, "copy_file_range");
  return number(env, n);
}

static napi_value Ficlone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int dest = -1, src = -1;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "destFd", &dest) ||
      !arg_fd(env, argv[1], "srcFd", &src)) {
    return nullptr;
  }
  if (ioctl(dest, FICLONE, src) != 0) return sys_error(env, errno, "ioctl");
  return undefined(env);
}

static napi_value Fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd = -1;
  int64_t mode = 0, offset = 0, len = 0;
  if (!get_args(env, info, 4, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_int(env, argv[1], "mode", 0, INT32_MAX, &mode) ||
      !arg_int(env, argv[2], "offset", 0, kMaxSafeInteger, &offset) ||
      !arg_int(env, argv[3], "len", 0, kMaxSafeInteger, &len)) {
    return nullptr;
  }
  if (fallocate(fd, static_cast<int>(mode), static_cast<off_t>(offset),
                static_cast<off_t>(len)) != 0) {
    return sys_error(env, errno, "fallocate");
  }
  return undefined(env);
}

bool register_data(napi_env env, napi_value exports, napi_value constants) {
  return define_function(env, exports, "lseek", Lseek) &&
         define_function(env, exports, "copyFileRange", CopyFileRange) &&
         define_function(env, exports, "ficlone", Ficlone) &&
         define_function(env, exports, "fallocate", Fallocate) &&
         define_constant(env, constants, "SEEK_SET", SEEK_SET) &&
         define_constant(env, constants, "SEEK_CUR", SEEK_CUR) &&
         define_constant(env, constants, "SEEK_END", SEEK_END) &&
         define_constant(env, constants, "SEEK_DATA", SEEK_DATA) &&
         define_constant(env, constants, "SEEK_HOLE", SEEK_HOLE) &&
         define_constant(env, constants, "FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE) &&
         define_constant(env, constants, "FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE) &&
         define_constant(env, constants, "FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE);
}

}  // namespace shim
