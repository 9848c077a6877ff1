// Reading the next FUSE request without going to sleep first.
//
// A blocking read of /dev/fuse puts the serving thread to sleep; the next
// request wakes it, and on a VM that wake-up (an interrupt to another CPU,
// a context switch) costs more than answering a cached lookup. A process
// that walks a tree sends its next request some tens of microseconds after
// the last reply, so the thread first polls the device for up to `spinUs`
// microseconds and only then blocks in read(2). The spin is spent only
// while requests keep coming: an idle mount sleeps after one window.
#include "shim.h"

#include <poll.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace shim {

static int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Returns once the device has something to read (or an error to report),
// or after `spin_ns`; the read(2) that follows sleeps only in the latter case.
static void poll_for(int fd, int64_t spin_ns) {
  const int64_t until = now_ns() + spin_ns;
  struct pollfd p = {fd, POLLIN, 0};
  do {
    p.revents = 0;
    if (poll(&p, 1, 0) != 0) return;
    sched_yield();  // a process waiting for this CPU (the client itself, maybe) runs first
  } while (now_ns() < until);
}

// readDevice(fd, buffer, spinUs) -> bytes read; errors as node:fs's.
static napi_value ReadDevice(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd = -1;
  const void* data = nullptr;
  size_t len = 0;
  int64_t spin_us = 0;
  if (!get_args(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_bytes(env, argv[1], "buffer", &data, &len) ||
      !arg_int(env, argv[2], "spinUs", 0, 1000000, &spin_us)) {
    return nullptr;
  }
  if (spin_us > 0) poll_for(fd, spin_us * 1000);
  ssize_t n = read(fd, const_cast<void*>(data), len);
  if (n < 0) return sys_error(env, errno, "read");
  return number(env, n);
}

bool register_devread(napi_env env, napi_value exports, napi_value) {
  return define_function(env, exports, "readDevice", ReadDevice);
}

}  // namespace shim
