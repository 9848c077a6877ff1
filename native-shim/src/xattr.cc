// Extended attributes, by path without following a final symlink (l*) and
// by file descriptor (f*, for copy-up, which works on open files). node:fs
// has none of these.
//
// Values and name lists have no size known in advance. A first try into a
// small buffer answers the common cases in one system call (the kernel
// reading security.capability before every write, absent attributes); only
// on ERANGE is the size asked for, and since the attribute can grow again
// between the two calls, ERANGE starts the loop over.
#include "shim.h"

#include <sys/xattr.h>

#include <cerrno>
#include <vector>

namespace shim {

constexpr size_t kFirstTry = 1024;

// `read(buf, size)` is one getxattr/listxattr call; size 0 asks the size.
template <typename Read>
static ssize_t read_sized(Read read, std::vector<char>* buf) {
  buf->resize(kFirstTry);
  for (;;) {
    ssize_t n = read(buf->data(), buf->size());
    if (n >= 0 || errno != ERANGE) return n;
    n = read(nullptr, 0);
    // Zero means the value shrank to empty meanwhile: a real answer, and
    // reading into a zero-sized buffer would ask the size again instead.
    if (n <= 0) return n;
    buf->resize(static_cast<size_t>(n));
  }
}

static napi_value to_buffer(napi_env env, const std::vector<char>& buf, ssize_t n) {
  napi_value result;
  SHIM_CHECK(env, napi_create_buffer_copy(env, static_cast<size_t>(n), buf.data(),
                                          nullptr, &result));
  return result;
}

// The kernel's list is NUL-terminated names back to back.
static napi_value to_names(napi_env env, const std::vector<char>& buf, ssize_t n) {
  napi_value names;
  SHIM_CHECK(env, napi_create_array(env, &names));
  uint32_t index = 0;
  for (size_t start = 0; start < static_cast<size_t>(n);) {
    size_t end = start;
    while (end < static_cast<size_t>(n) && buf[end] != '\0') end++;
    if (end > start) {
      napi_value name;
      SHIM_CHECK(env, napi_create_string_utf8(env, buf.data() + start, end - start, &name));
      SHIM_CHECK(env, napi_set_element(env, names, index++, name));
    }
    start = end + 1;
  }
  return names;
}

// lgetxattr(path, name) -> Buffer. `absent_ok` (lfindxattr, the hot path:
// every `ls -l` asks two absent attributes of each file) answers an absent
// attribute, or a filesystem without xattrs, with undefined instead of
// building and throwing an error object.
static napi_value path_getxattr(napi_env env, napi_callback_info info, bool absent_ok) {
  napi_value argv[2];
  std::string path, name;
  if (!get_args(env, info, 2, argv) || !arg_path(env, argv[0], "path", &path) ||
      !arg_string(env, argv[1], "name", &name)) {
    return nullptr;
  }
  std::vector<char> buf;
  ssize_t n = read_sized([&](void* data, size_t size) {
    return lgetxattr(path.c_str(), name.c_str(), data, size);
  }, &buf);
  if (n < 0 && absent_ok && (errno == ENODATA || errno == EOPNOTSUPP)) return undefined(env);
  if (n < 0) return sys_error(env, errno, "lgetxattr", &path);
  return to_buffer(env, buf, n);
}

static napi_value Lgetxattr(napi_env env, napi_callback_info info) {
  return path_getxattr(env, info, false);
}

static napi_value Lfindxattr(napi_env env, napi_callback_info info) {
  return path_getxattr(env, info, true);
}

// (fd, name): the arguments of fgetxattr and fremovexattr.
static bool fd_and_name(napi_env env, napi_callback_info info, int* fd, std::string* name) {
  napi_value argv[2];
  return get_args(env, info, 2, argv) && arg_fd(env, argv[0], "fd", fd) &&
         arg_string(env, argv[1], "name", name);
}

static napi_value Fgetxattr(napi_env env, napi_callback_info info) {
  int fd = -1;
  std::string name;
  if (!fd_and_name(env, info, &fd, &name)) return nullptr;
  std::vector<char> buf;
  ssize_t n = read_sized([&](void* data, size_t size) {
    return fgetxattr(fd, name.c_str(), data, size);
  }, &buf);
  if (n < 0) return sys_error(env, errno, "fgetxattr");
  return to_buffer(env, buf, n);
}

static napi_value Llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  std::string path;
  if (!get_args(env, info, 1, argv) || !arg_path(env, argv[0], "path", &path)) {
    return nullptr;
  }
  std::vector<char> buf;
  ssize_t n = read_sized([&](void* data, size_t size) {
    return llistxattr(path.c_str(), static_cast<char*>(data), size);
  }, &buf);
  if (n < 0) return sys_error(env, errno, "llistxattr", &path);
  return to_names(env, buf, n);
}

static napi_value Flistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd = -1;
  if (!get_args(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd)) return nullptr;
  std::vector<char> buf;
  ssize_t n = read_sized([&](void* data, size_t size) {
    return flistxattr(fd, static_cast<char*>(data), size);
  }, &buf);
  if (n < 0) return sys_error(env, errno, "flistxattr");
  return to_names(env, buf, n);
}

static napi_value Lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  std::string path, name;
  const void* value = nullptr;
  size_t len = 0;
  int64_t flags = 0;
  if (!get_args(env, info, 4, argv) || !arg_path(env, argv[0], "path", &path) ||
      !arg_string(env, argv[1], "name", &name) ||
      !arg_bytes(env, argv[2], "value", &value, &len) ||
      !arg_int(env, argv[3], "flags", 0, INT32_MAX, &flags)) {
    return nullptr;
  }
  if (lsetxattr(path.c_str(), name.c_str(), value, len, static_cast<int>(flags)) != 0) {
    return sys_error(env, errno, "lsetxattr", &path);
  }
  return undefined(env);
}

static napi_value Fsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd = -1;
  std::string name;
  const void* value = nullptr;
  size_t len = 0;
  int64_t flags = 0;
  if (!get_args(env, info, 4, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_string(env, argv[1], "name", &name) ||
      !arg_bytes(env, argv[2], "value", &value, &len) ||
      !arg_int(env, argv[3], "flags", 0, INT32_MAX, &flags)) {
    return nullptr;
  }
  if (fsetxattr(fd, name.c_str(), value, len, static_cast<int>(flags)) != 0) {
    return sys_error(env, errno, "fsetxattr");
  }
  return undefined(env);
}

static napi_value Lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  std::string path, name;
  if (!get_args(env, info, 2, argv) || !arg_path(env, argv[0], "path", &path) ||
      !arg_string(env, argv[1], "name", &name)) {
    return nullptr;
  }
  if (lremovexattr(path.c_str(), name.c_str()) != 0) {
    return sys_error(env, errno, "lremovexattr", &path);
  }
  return undefined(env);
}

static napi_value Fremovexattr(napi_env env, napi_callback_info info) {
  int fd = -1;
  std::string name;
  if (!fd_and_name(env, info, &fd, &name)) return nullptr;
  if (fremovexattr(fd, name.c_str()) != 0) {
    return sys_error(env, errno, "fremovexattr");
  }
  return undefined(env);
}

bool register_xattr(napi_env env, napi_value exports, napi_value constants) {
  return define_function(env, exports, "lgetxattr", Lgetxattr) &&
         define_function(env, exports, "lfindxattr", Lfindxattr) &&
         define_function(env, exports, "fgetxattr", Fgetxattr) &&
         define_function(env, exports, "llistxattr", Llistxattr) &&
         define_function(env, exports, "flistxattr", Flistxattr) &&
         define_function(env, exports, "lsetxattr", Lsetxattr) &&
         define_function(env, exports, "fsetxattr", Fsetxattr) &&
         define_function(env, exports, "lremovexattr", Lremovexattr) &&
         define_function(env, exports, "fremovexattr", Fremovexattr) &&
         define_constant(env, constants, "XATTR_CREATE", XATTR_CREATE) &&
         define_constant(env, constants, "XATTR_REPLACE", XATTR_REPLACE);
}

}  // namespace shim
