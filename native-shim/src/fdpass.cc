// Receiving a file descriptor over a Unix socket, which Node cannot do: how
// an ordinary user mounts FUSE. The setuid fusermount3 opens /dev/fuse,
// mounts it, and sends the descriptor (SCM_RIGHTS) over the socket named by
// the _FUSE_COMMFD environment variable, the protocol libfuse speaks with
// it. lib/fuse/fusermount.ts makes the socket pair, runs fusermount3 with
// one end and receives on the other.
//
// Both descriptors of the pair and the received one are close-on-exec: a
// child that needs one gets it through spawn's stdio, which dups it.
#include "shim.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shim {

// socketpair(AF_UNIX, SOCK_STREAM): [fd, fd].
static napi_value Socketpair(napi_env env, napi_callback_info /*info*/) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return sys_error(env, errno, "socketpair");
  }
  napi_value pair;
  if (napi_create_array_with_length(env, 2, &pair) != napi_ok ||
      napi_set_element(env, pair, 0, number(env, fds[0])) != napi_ok ||
      napi_set_element(env, pair, 1, number(env, fds[1])) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    return napi_failure(env);
  }
  return pair;
}

// One recvmsg(2) on `sockFd`, without waiting (MSG_DONTWAIT): the
// descriptor the message carries. EAGAIN when nothing is queued; ENOMSG
// when the peer closed its end or sent a message without a descriptor.
// Extra descriptors in the same message are closed.
static napi_value RecvFd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int sock = -1;
  if (!get_args(env, info, 1, argv) || !arg_fd(env, argv[0], "sockFd", &sock)) {
    return nullptr;
  }
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error(env, errno, "recvmsg");
  int fd = -1;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (fd < 0) fd = got;
      else close(got);
    }
  }
  if (fd < 0) return sys_error(env, ENOMSG, "recvmsg");
  napi_value v = number(env, fd);
  if (v == nullptr) close(fd);
  return v;
}

bool register_fdpass(napi_env env, napi_value exports, napi_value /*constants*/) {
  return define_function(env, exports, "socketpair", Socketpair) &&
         define_function(env, exports, "recvFd", RecvFd);
}

}  // namespace shim
