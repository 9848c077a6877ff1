// Mounting and the FUSE device's passthrough ioctls: mount(2)/umount2(2)
// so the serving process can mount /dev/fuse itself when it runs as root,
// and FUSE_DEV_IOC_BACKING_OPEN/CLOSE, which register an open file on the
// lower filesystem so the kernel serves reads and writes of a FUSE handle
// straight from it (Linux 6.9, protocol 7.40).
//
// The system's <linux/fuse.h> may predate 7.40, so the ioctl numbers and
// their argument are spelled out here under names of our own, which cannot
// collide with a newer header's.
#include "shim.h"

#include <sys/ioctl.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstdint>

namespace shim {

// struct fuse_backing_map in the kernel's uapi header.
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
static_assert(sizeof(BackingMap) == 16, "the kernel reads 16 bytes");

constexpr unsigned kFuseDevIocMagic = 229;
constexpr unsigned long kBackingOpen = _IOW(kFuseDevIocMagic, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(kFuseDevIocMagic, 2, uint32_t);

static napi_value Mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  std::string source, target, fstype, data;
  int64_t flags = 0;
  if (!get_args(env, info, 5, argv) || !arg_string(env, argv[0], "source", &source) ||
      !arg_string(env, argv[1], "target", &target) ||
      !arg_string(env, argv[2], "fstype", &fstype) ||
      !arg_int(env, argv[3], "flags", 0, UINT32_MAX, &flags) ||
      !arg_string(env, argv[4], "data", &data)) {
    return nullptr;
  }
  if (mount(source.c_str(), target.c_str(), fstype.c_str(),
            static_cast<unsigned long>(flags), data.c_str()) != 0) {
    return sys_error(env, errno, "mount", &source, &target);
  }
  return undefined(env);
}

static napi_value Umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  std::string target;
  int64_t flags = 0;
  if (!get_args(env, info, 2, argv) || !arg_string(env, argv[0], "target", &target) ||
      !arg_int(env, argv[1], "flags", 0, INT32_MAX, &flags)) {
    return nullptr;
  }
  if (umount2(target.c_str(), static_cast<int>(flags)) != 0) {
    return sys_error(env, errno, "umount2", &target);
  }
  return undefined(env);
}

static napi_value FuseBackingOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int dev = -1, backing = -1;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "devFd", &dev) ||
      !arg_fd(env, argv[1], "backingFd", &backing)) {
    return nullptr;
  }
  BackingMap map = {backing, 0, 0};
  int id = ioctl(dev, kBackingOpen, &map);
  if (id < 0) return sys_error(env, errno, "ioctl");
  return number(env, id);
}

static napi_value FuseBackingClose(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int dev = -1;
  int64_t id = 0;
  if (!get_args(env, info, 2, argv) || !arg_fd(env, argv[0], "devFd", &dev) ||
      !arg_int(env, argv[1], "backingId", 0, UINT32_MAX, &id)) {
    return nullptr;
  }
  uint32_t backing_id = static_cast<uint32_t>(id);
  if (ioctl(dev, kBackingClose, &backing_id) != 0) return sys_error(env, errno, "ioctl");
  return undefined(env);
}

bool register_mount(napi_env env, napi_value exports, napi_value constants) {
  return define_function(env, exports, "mount", Mount) &&
         define_function(env, exports, "umount2", Umount2) &&
         define_function(env, exports, "fuseBackingOpen", FuseBackingOpen) &&
         define_function(env, exports, "fuseBackingClose", FuseBackingClose) &&
         define_constant(env, constants, "MNT_FORCE", MNT_FORCE) &&
         define_constant(env, constants, "MNT_DETACH", MNT_DETACH) &&
         define_constant(env, constants, "MNT_EXPIRE", MNT_EXPIRE) &&
         define_constant(env, constants, "UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW) &&
         define_constant(env, constants, "MS_RDONLY", MS_RDONLY) &&
         define_constant(env, constants, "MS_NOSUID", MS_NOSUID) &&
         define_constant(env, constants, "MS_NODEV", MS_NODEV) &&
         define_constant(env, constants, "MS_NOEXEC", MS_NOEXEC) &&
         define_constant(env, constants, "MS_SYNCHRONOUS", MS_SYNCHRONOUS) &&
         define_constant(env, constants, "MS_REMOUNT", MS_REMOUNT) &&
         define_constant(env, constants, "MS_DIRSYNC", MS_DIRSYNC) &&
         define_constant(env, constants, "MS_NOATIME", MS_NOATIME) &&
         define_constant(env, constants, "MS_NODIRATIME", MS_NODIRATIME) &&
         define_constant(env, constants, "MS_BIND", MS_BIND) &&
         define_constant(env, constants, "MS_MOVE", MS_MOVE) &&
         define_constant(env, constants, "MS_REC", MS_REC) &&
         define_constant(env, constants, "MS_SILENT", MS_SILENT) &&
         define_constant(env, constants, "MS_PRIVATE", MS_PRIVATE) &&
         define_constant(env, constants, "MS_SLAVE", MS_SLAVE) &&
         define_constant(env, constants, "MS_SHARED", MS_SHARED) &&
         define_constant(env, constants, "MS_RELATIME", MS_RELATIME) &&
         define_constant(env, constants, "MS_STRICTATIME", MS_STRICTATIME) &&
         define_constant(env, constants, "MS_LAZYTIME", MS_LAZYTIME);
}

}  // namespace shim
