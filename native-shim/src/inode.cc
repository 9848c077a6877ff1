// Names and inode metadata node:fs cannot reach: mknod (fifos, devices, and
// the 0/0 character device that is an overlayfs whiteout), renameat2 (no
// replace, exchange, whiteout: the atomic steps copy-up and rename build on)
// and utimensat/futimens with nanoseconds, UTIME_NOW and UTIME_OMIT, where
// fs.utimes rounds through a double of seconds; and linkFd, which names a
// file that has no name yet (O_TMPFILE) or any more.
#include "shim.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

// glibc declares renameat2 from 2.28 on, musl not at all; the system call
// is older than both (Linux 3.15).
#if !defined(RENAME_NOREPLACE)
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#define RENAME_WHITEOUT (1 << 2)
#endif

namespace shim {

static int rename2(const char* from, const char* to, unsigned int flags) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
  return renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
#else
  return static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags));
#endif
}

static napi_value Mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  std::string path;
  int64_t mode = 0, rdev = 0;
  if (!get_args(env, info, 3, argv) || !arg_path(env, argv[0], "path", &path) ||
      !arg_int(env, argv[1], "mode", 0, UINT32_MAX, &mode) ||
      !arg_int(env, argv[2], "rdev", 0, kMaxSafeInteger, &rdev)) {
    return nullptr;
  }
  if (mknod(path.c_str(), static_cast<mode_t>(mode), static_cast<dev_t>(rdev)) != 0) {
    return sys_error(env, errno, "mknod", &path);
  }
  return undefined(env);
}

static napi_value Renameat2(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  std::string from, to;
  int64_t flags = 0;
  if (!get_args(env, info, 3, argv) || !arg_path(env, argv[0], "oldPath", &from) ||
      !arg_path(env, argv[1], "newPath", &to) ||
      !arg_int(env, argv[2], "flags", 0, UINT32_MAX, &flags)) {
    return nullptr;
  }
  if (rename2(from.c_str(), to.c_str(), static_cast<unsigned int>(flags)) != 0) {
    return sys_error(env, errno, "renameat2", &from, &to);
  }
  return undefined(env);
}

static napi_value Utimensat(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  std::string path;
  struct timespec times[2];
  bool nofollow = false;
  if (!get_args(env, info, 4, argv) || !arg_path(env, argv[0], "path", &path) ||
      !arg_time(env, argv[1], "atime", &times[0]) ||
      !arg_time(env, argv[2], "mtime", &times[1]) ||
      !arg_bool(env, argv[3], "nofollow", &nofollow)) {
    return nullptr;
  }
  int flags = nofollow ? AT_SYMLINK_NOFOLLOW : 0;
  if (utimensat(AT_FDCWD, path.c_str(), times, flags) != 0) {
    return sys_error(env, errno, "utimensat", &path);
  }
  return undefined(env);
}

static napi_value Futimens(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd = -1;
  struct timespec times[2];
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_time(env, argv[1], "atime", &times[0]) ||
      !arg_time(env, argv[2], "mtime", &times[1])) {
    return nullptr;
  }
  if (futimens(fd, times) != 0) return sys_error(env, errno, "futimens");
  return undefined(env);
}

// linkFd(fd, newPath): a new name for the file open as `fd`, whatever names
// it has (none, for an O_TMPFILE file). Through /proc/self/fd with
// AT_SYMLINK_FOLLOW rather than AT_EMPTY_PATH, which needs
// CAP_DAC_READ_SEARCH.
static napi_value LinkFd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd = -1;
  std::string to;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_path(env, argv[1], "newPath", &to)) {
    return nullptr;
  }
  char from[64];
  snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, from, AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    return sys_error(env, errno, "link", nullptr, &to);
  }
  return undefined(env);
}

bool register_inode(napi_env env, napi_value exports, napi_value constants) {
  return define_function(env, exports, "mknod", Mknod) &&
         define_function(env, exports, "linkFd", LinkFd) &&
         define_constant(env, constants, "O_TMPFILE", O_TMPFILE) &&
         define_function(env, exports, "renameat2", Renameat2) &&
         define_function(env, exports, "utimensat", Utimensat) &&
         define_function(env, exports, "futimens", Futimens) &&
         define_constant(env, constants, "RENAME_NOREPLACE", RENAME_NOREPLACE) &&
         define_constant(env, constants, "RENAME_EXCHANGE", RENAME_EXCHANGE) &&
         define_constant(env, constants, "RENAME_WHITEOUT", RENAME_WHITEOUT);
}

}  // namespace shim
