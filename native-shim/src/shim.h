// What every source of the addon shares: argument parsing that throws the
// same TypeError/RangeError codes Node's own APIs throw, the one way to throw
// a system error, and the registration hook of each module.
//
// Convention: a helper that fails has already thrown a JavaScript exception;
// it returns false (or nullptr), and the caller returns nullptr at once so
// the exception reaches JavaScript untouched.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace shim {

// Numbers arrive as doubles; anything beyond 2^53 - 1 has already lost bits.
constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

// Throws an Error shaped like node:fs's: code, errno (negative), syscall,
// path and dest when given. Returns nullptr for `return sys_error(...)`.
napi_value sys_error(napi_env env, int err, const char* syscall,
                     const std::string* path = nullptr,
                     const std::string* dest = nullptr);

// For a napi_* call that did not return napi_ok: throws unless an exception
// is already pending, returns nullptr.
napi_value napi_failure(napi_env env);

#define SHIM_CHECK(env, call) \
  do { if ((call) != napi_ok) return ::shim::napi_failure(env); } while (0)

// Fills argv[0..n) from the call; missing arguments read as undefined and
// fail their type check like any other wrong type.
bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value* argv);

bool arg_string(napi_env env, napi_value v, const char* name, std::string* out);
// A path: a string (its UTF-8 bytes) or a Buffer (its bytes as they are, so
// a name that is not UTF-8 reaches the system call unchanged); no NUL.
bool arg_path(napi_env env, napi_value v, const char* name, std::string* out);
bool arg_int(napi_env env, napi_value v, const char* name,
             int64_t min, int64_t max, int64_t* out);
bool arg_fd(napi_env env, napi_value v, const char* name, int* out);
bool arg_bool(napi_env env, napi_value v, const char* name, bool* out);
// Any Buffer, TypedArray or DataView; points into its memory, which stays
// valid for the rest of the call.
bool arg_bytes(napi_env env, napi_value v, const char* name,
               const void** data, size_t* len);
// [sec, nsec], 'now' or 'omit', as utimensat(2) takes them.
bool arg_time(napi_env env, napi_value v, const char* name, struct timespec* out);

napi_value undefined(napi_env env);
napi_value number(napi_env env, int64_t n);

bool define_function(napi_env env, napi_value target, const char* name,
                     napi_callback cb);
bool define_constant(napi_env env, napi_value target, const char* name,
                     int64_t value);

// One per source file: adds its functions to exports and the flags they
// take to constants.
bool register_xattr(napi_env env, napi_value exports, napi_value constants);
bool register_inode(napi_env env, napi_value exports, napi_value constants);
bool register_data(napi_env env, napi_value exports, napi_value constants);
bool register_mount(napi_env env, napi_value exports, napi_value constants);
bool register_fdpass(napi_env env, napi_value exports, napi_value constants);
bool register_devread(napi_env env, napi_value exports, napi_value constants);
bool register_splice(napi_env env, napi_value exports, napi_value constants);

}  // namespace shim
