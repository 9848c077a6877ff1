// Sending a READ reply's data from the file to /dev/fuse without copying it
// through the daemon's memory: splice(2) the file's pages into a pipe (page
// references, no copy), put the reply header in front of them in a second
// pipe, and splice that whole message into the device, which copies each
// page once, into the kernel's request. A plain reply costs two copies
// (pread into a buffer, then write(2) from it, which also pins the buffer
// page by page).
//
// Never SPLICE_F_MOVE: with it the device may take a page out of the
// branch file's page cache into its own instead of copying it (seen: 1,755
// of the 65,536 pages of a cached lower file gone from its cache after one
// read through the mount), and the next reader of that file, another mount
// sharing the layer included, reads it from disk again.
//
// Two pipes because the header names the data's length, which is known only
// once the file has given what it has (a short count at end of file), and a
// pipe cannot take bytes in front of what it holds: the data waits in one
// pipe, and moving it behind the header into the other is one more splice,
// of page references again.
//
// The pipes are the caller's (makePipe), one pair per serving thread, used
// by one reply at a time and left empty after every call, failed or not:
// whatever a failure left in them is read out and dropped. Each must hold a
// whole reply, which the caller checks against their capacity.
#include "shim.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace shim {

// struct fuse_out_header: len, error, unique.
struct OutHeader {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

// Reads out and drops whatever is left in a (non-blocking) pipe.
static void drain(int fd) {
  char scratch[16384];
  for (;;) {
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

// Moves exactly `len` bytes from pipe `from` to `to` (a pipe or the device).
static bool splice_all(int from, int to, size_t len, int* err) {
  while (len > 0) {
    ssize_t n = splice(from, nullptr, to, nullptr, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = n < 0 ? errno : EIO;
      return false;
    }
    len -= static_cast<size_t>(n);
  }
  return true;
}

// makePipe(bytes) -> [readFd, writeFd, capacity]: a close-on-exec,
// non-blocking pipe grown to at least `bytes`, or as far as it may grow.
static napi_value MakePipe(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t want = 0;
  if (!get_args(env, info, 1, argv) ||
      !arg_int(env, argv[0], "bytes", 0, INT32_MAX, &want)) {
    return nullptr;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return sys_error(env, errno, "pipe2");
  // Without CAP_SYS_RESOURCE a pipe grows to pipe-max-size at most (EPERM
  // past it): ask for half as much until it takes (the kernel rounds a
  // size up to a power of two pages).
  int cap = -1;
  for (int64_t size = want; cap < 0 && size >= 4096; size /= 2) {
    cap = fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(size));
  }
  if (cap < 0) cap = fcntl(fds[1], F_GETPIPE_SZ);
  if (cap < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return sys_error(env, err, "fcntl");
  }
  napi_value out;
  SHIM_CHECK(env, napi_create_array_with_length(env, 3, &out));
  SHIM_CHECK(env, napi_set_element(env, out, 0, number(env, fds[0])));
  SHIM_CHECK(env, napi_set_element(env, out, 1, number(env, fds[1])));
  SHIM_CHECK(env, napi_set_element(env, out, 2, number(env, cap)));
  return out;
}

// closePipe(readFd, writeFd): closes both ends of a pipe makePipe made.
// Closed here, not with fs.closeSync: in a worker thread Node counts the
// descriptors node:fs opened, and warns at every close of one it did not.
static napi_value ClosePipe(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fds[2];
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "readFd", &fds[0]) ||
      !arg_fd(env, argv[1], "writeFd", &fds[1])) {
    return nullptr;
  }
  // Linux frees the descriptor even when close(2) fails (EINTR included),
  // so neither is retried, and a pipe has no data to lose.
  close(fds[0]);
  close(fds[1]);
  return undefined(env);
}

// spliceIn(fileFd, offset, size, dataR, dataW) -> bytes: up to `size` bytes
// of the file at `offset` into the data pipe, fewer only at end of file. A
// failure leaves the pipe empty and throws the file's error.
static napi_value SpliceIn(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int file = -1, data_r = -1, data_w = -1;
  int64_t offset = 0, size = 0;
  if (!get_args(env, info, 5, argv) || !arg_fd(env, argv[0], "fileFd", &file) ||
      !arg_int(env, argv[1], "offset", 0, kMaxSafeInteger, &offset) ||
      !arg_int(env, argv[2], "size", 0, INT32_MAX, &size) ||
      !arg_fd(env, argv[3], "dataR", &data_r) ||
      !arg_fd(env, argv[4], "dataW", &data_w)) {
    return nullptr;
  }
  loff_t at = offset;
  size_t got = 0;
  while (got < static_cast<size_t>(size)) {
    ssize_t n = splice(file, &at, data_w, nullptr, static_cast<size_t>(size) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      drain(data_r);
      return sys_error(env, err, "splice");
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return number(env, static_cast<int64_t>(got));
}

// spliceOut(devFd, unique, bytes, dataR, msgR, msgW): the success reply to
// request `unique`, its data the `bytes` waiting in the data pipe, written
// to the device as one message. A failure leaves both pipes empty and
// throws the device's error (ENOENT: the request was interrupted).
static napi_value SpliceOut(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int dev = -1, data_r = -1, msg_r = -1, msg_w = -1;
  int64_t unique = 0, bytes = 0;
  if (!get_args(env, info, 6, argv) || !arg_fd(env, argv[0], "devFd", &dev) ||
      !arg_int(env, argv[1], "unique", 0, kMaxSafeInteger, &unique) ||
      !arg_int(env, argv[2], "bytes", 0, INT32_MAX - sizeof(OutHeader), &bytes) ||
      !arg_fd(env, argv[3], "dataR", &data_r) ||
      !arg_fd(env, argv[4], "msgR", &msg_r) ||
      !arg_fd(env, argv[5], "msgW", &msg_w)) {
    return nullptr;
  }
  const size_t len = sizeof(OutHeader) + static_cast<size_t>(bytes);
  const OutHeader header = {static_cast<uint32_t>(len), 0, static_cast<uint64_t>(unique)};
  int err = 0;
  const char* syscall = "splice";
  ssize_t w;
  do {
    w = write(msg_w, &header, sizeof header);
  } while (w < 0 && errno == EINTR);
  if (w != static_cast<ssize_t>(sizeof header)) {
    err = w < 0 ? errno : EIO;
    syscall = "write";
  } else if (splice_all(data_r, msg_w, static_cast<size_t>(bytes), &err)) {
    // The device takes the message whole, out of the pipe, even when it
    // refuses it; a short count would be its bug.
    if (splice_all(msg_r, dev, len, &err)) return undefined(env);
  }
  drain(data_r);
  drain(msg_r);
  return sys_error(env, err, syscall);
}

bool register_splice(napi_env env, napi_value exports, napi_value) {
  return define_function(env, exports, "makePipe", MakePipe) &&
         define_function(env, exports, "closePipe", ClosePipe) &&
         define_function(env, exports, "spliceIn", SpliceIn) &&
         define_function(env, exports, "spliceOut", SpliceOut);
}

}  // namespace shim
