// System errors shaped like node:fs's, so callers treat a failed lgetxattr
// exactly like a failed fs.lstat: `code`, `errno` (negative, as Node reports
// it), `syscall`, `path`, and the message `ENOENT: no such file or
// directory, lgetxattr '/x'`.
//
// The code comes from the table of <errno.h> names below, not from libuv,
// because libuv has no name for errnos a filesystem does return (EDQUOT,
// ESTALE, EUCLEAN, ...) and Node would report those as 'UNKNOWN'. Where
// libuv does know the errno its message is used, so the text matches Node's
// word for word; elsewhere strerror's. Aliases sharing a number (ENOTSUP and
// EOPNOTSUPP, EAGAIN and EWOULDBLOCK) are named as libuv names them.
#include "shim.h"

#include <uv.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace shim {

static const char* errno_name(int err) {
  switch (err) {
#define NAME(e) case e: return #e;
    NAME(EPERM) NAME(ENOENT) NAME(ESRCH) NAME(EINTR) NAME(EIO) NAME(ENXIO)
    NAME(E2BIG) NAME(ENOEXEC) NAME(EBADF) NAME(ECHILD) NAME(EAGAIN)
    NAME(ENOMEM) NAME(EACCES) NAME(EFAULT) NAME(ENOTBLK) NAME(EBUSY)
    NAME(EEXIST) NAME(EXDEV) NAME(ENODEV) NAME(ENOTDIR) NAME(EISDIR)
    NAME(EINVAL) NAME(ENFILE) NAME(EMFILE) NAME(ENOTTY) NAME(ETXTBSY)
    NAME(EFBIG) NAME(ENOSPC) NAME(ESPIPE) NAME(EROFS) NAME(EMLINK)
    NAME(EPIPE) NAME(EDOM) NAME(ERANGE) NAME(EDEADLK) NAME(ENAMETOOLONG)
    NAME(ENOLCK) NAME(ENOSYS) NAME(ENOTEMPTY) NAME(ELOOP) NAME(ENOMSG)
    NAME(EIDRM) NAME(ECHRNG) NAME(EL2NSYNC) NAME(EL3HLT) NAME(EL3RST)
    NAME(ELNRNG) NAME(EUNATCH) NAME(ENOCSI) NAME(EL2HLT) NAME(EBADE)
    NAME(EBADR) NAME(EXFULL) NAME(ENOANO) NAME(EBADRQC) NAME(EBADSLT)
    NAME(EBFONT) NAME(ENOSTR) NAME(ENODATA) NAME(ETIME) NAME(ENOSR)
    NAME(ENONET) NAME(ENOPKG) NAME(EREMOTE) NAME(ENOLINK) NAME(EADV)
    NAME(ESRMNT) NAME(ECOMM) NAME(EPROTO) NAME(EMULTIHOP) NAME(EDOTDOT)
    NAME(EBADMSG) NAME(EOVERFLOW) NAME(ENOTUNIQ) NAME(EBADFD) NAME(EREMCHG)
    NAME(ELIBACC) NAME(ELIBBAD) NAME(ELIBSCN) NAME(ELIBMAX) NAME(ELIBEXEC)
    NAME(EILSEQ) NAME(ERESTART) NAME(ESTRPIPE) NAME(EUSERS) NAME(ENOTSOCK)
    NAME(EDESTADDRREQ) NAME(EMSGSIZE) NAME(EPROTOTYPE) NAME(ENOPROTOOPT)
    NAME(EPROTONOSUPPORT) NAME(ESOCKTNOSUPPORT) NAME(ENOTSUP)
    NAME(EPFNOSUPPORT) NAME(EAFNOSUPPORT) NAME(EADDRINUSE)
    NAME(EADDRNOTAVAIL) NAME(ENETDOWN) NAME(ENETUNREACH) NAME(ENETRESET)
    NAME(ECONNABORTED) NAME(ECONNRESET) NAME(ENOBUFS) NAME(EISCONN)
    NAME(ENOTCONN) NAME(ESHUTDOWN) NAME(ETOOMANYREFS) NAME(ETIMEDOUT)
    NAME(ECONNREFUSED) NAME(EHOSTDOWN) NAME(EHOSTUNREACH) NAME(EALREADY)
    NAME(EINPROGRESS) NAME(ESTALE) NAME(EUCLEAN) NAME(ENOTNAM) NAME(ENAVAIL)
    NAME(EISNAM) NAME(EREMOTEIO) NAME(EDQUOT) NAME(ENOMEDIUM)
    NAME(EMEDIUMTYPE) NAME(ECANCELED) NAME(ENOKEY) NAME(EKEYEXPIRED)
    NAME(EKEYREVOKED) NAME(EKEYREJECTED) NAME(EOWNERDEAD)
    NAME(ENOTRECOVERABLE) NAME(ERFKILL) NAME(EHWPOISON)
#undef NAME
  }
  return nullptr;
}

static std::string errno_message(int err, const char* name) {
  char buf[128];
  int uverr = uv_translate_sys_error(err);
  uv_err_name_r(uverr, buf, sizeof buf);
  if (name != nullptr && strcmp(buf, name) == 0) {
    uv_strerror_r(uverr, buf, sizeof buf);
    return buf;
  }
  std::string text = strerror(err);
  // "Disk quota exceeded" -> "disk quota exceeded", as libuv words them;
  // leaves initialisms such as "I/O" alone.
  if (text.size() > 1 && isupper(static_cast<unsigned char>(text[0])) &&
      islower(static_cast<unsigned char>(text[1]))) {
    text[0] = static_cast<char>(tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

static bool set_string(napi_env env, napi_value obj, const char* key,
                       const std::string& value) {
  napi_value v;
  return napi_create_string_utf8(env, value.data(), value.size(), &v) == napi_ok &&
         napi_set_named_property(env, obj, key, v) == napi_ok;
}

napi_value sys_error(napi_env env, int err, const char* syscall,
                     const std::string* path, const std::string* dest) {
  const char* name = errno_name(err);
  // Node's own answer for an errno it cannot name; the number still travels.
  std::string code = name != nullptr ? name : "UNKNOWN";
  std::string message = code + ": " + errno_message(err, name) + ", " + syscall;
  if (path != nullptr) message += " '" + *path + "'";
  if (dest != nullptr) message += " -> '" + *dest + "'";

  napi_value code_value, message_value, error, errno_value;
  SHIM_CHECK(env, napi_create_string_utf8(env, code.data(), code.size(), &code_value));
  SHIM_CHECK(env, napi_create_string_utf8(env, message.data(), message.size(),
                                          &message_value));
  // Properties in node:fs's order, so the two print alike.
  SHIM_CHECK(env, napi_create_error(env, nullptr, message_value, &error));
  SHIM_CHECK(env, napi_create_int32(env, -err, &errno_value));
  SHIM_CHECK(env, napi_set_named_property(env, error, "errno", errno_value));
  SHIM_CHECK(env, napi_set_named_property(env, error, "code", code_value));
  if (!set_string(env, error, "syscall", syscall)) return napi_failure(env);
  if (path != nullptr && !set_string(env, error, "path", *path)) return napi_failure(env);
  if (dest != nullptr && !set_string(env, error, "dest", *dest)) return napi_failure(env);
  napi_throw(env, error);
  return nullptr;
}

napi_value napi_failure(napi_env env) {
  // Read the failure before asking about exceptions: every napi_* call,
  // napi_is_exception_pending included, overwrites the last error info.
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  std::string why = info != nullptr && info->error_message != nullptr
                        ? info->error_message
                        : "unknown Node-API failure";
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_NATIVE_SHIM", why.c_str());
  return nullptr;
}

}  // namespace shim
