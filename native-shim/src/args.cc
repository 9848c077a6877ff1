// Argument checking for every exported function. A wrong argument is a bug
// in the caller, so it throws what Node's own APIs throw for one
// (ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE) and never
// reaches the kernel: a NUL inside a path would silently cut it short, and a
// fractional or huge offset would be truncated into a different one.
#include "shim.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shim {

static const char* type_name(napi_valuetype type) {
  switch (type) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

// JavaScript's shortest round-trip spelling, near enough for a message.
static std::string format_number(double value) {
  char buf[32];
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (strtod(buf, nullptr) == value) break;
  }
  return buf;
}

static bool invalid_type(napi_env env, napi_value v, const char* name,
                         const char* expected) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, v, &type);
  std::string received = type == napi_undefined || type == napi_null
                             ? type_name(type)
                             : std::string("type ") + type_name(type);
  std::string message = std::string("The \"") + name + "\" argument must be " +
                        expected + ". Received " + received;
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message.c_str());
  return false;
}

static bool out_of_range(napi_env env, const char* name, const std::string& rule,
                         double received) {
  std::string message = std::string("The value of \"") + name +
                        "\" is out of range. It must be " + rule +
                        ". Received " + format_number(received);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message.c_str());
  return false;
}

static bool has_type(napi_env env, napi_value v, napi_valuetype wanted) {
  napi_valuetype type;
  return napi_typeof(env, v, &type) == napi_ok && type == wanted;
}

bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value* argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) {
    napi_failure(env);
    return false;
  }
  return true;
}

// A C string cannot carry a NUL: refuse one rather than cut the value short.
static bool no_nul(napi_env env, const char* name, const char* what, const std::string& s) {
  if (memchr(s.data(), '\0', s.size()) == nullptr) return true;
  std::string message = std::string("The argument '") + name + "' must be " + what + " without null bytes";
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message.c_str());
  return false;
}

bool arg_string(napi_env env, napi_value v, const char* name, std::string* out) {
  if (!has_type(env, v, napi_string)) return invalid_type(env, v, name, "of type string");
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) {
    napi_failure(env);
    return false;
  }
  out->assign(len, '\0');
  if (napi_get_value_string_utf8(env, v, &(*out)[0], len + 1, &len) != napi_ok) {
    napi_failure(env);
    return false;
  }
  return no_nul(env, name, "a string", *out);
}

bool arg_path(napi_env env, napi_value v, const char* name, std::string* out) {
  bool is_view = false;
  if (napi_is_buffer(env, v, &is_view) != napi_ok) {
    napi_failure(env);
    return false;
  }
  if (!is_view) {
    if (!has_type(env, v, napi_string)) return invalid_type(env, v, name, "of type string or an instance of Buffer");
    return arg_string(env, v, name, out);
  }
  const void* data = nullptr;
  size_t len = 0;
  if (!arg_bytes(env, v, name, &data, &len)) return false;
  out->assign(static_cast<const char*>(data), len);
  return no_nul(env, name, "a path", *out);
}

bool arg_int(napi_env env, napi_value v, const char* name,
             int64_t min, int64_t max, int64_t* out) {
  if (!has_type(env, v, napi_number)) return invalid_type(env, v, name, "of type number");
  double value = 0;
  if (napi_get_value_double(env, v, &value) != napi_ok) {
    napi_failure(env);
    return false;
  }
  if (!std::isfinite(value) || std::trunc(value) != value) {
    return out_of_range(env, name, "an integer", value);
  }
  if (value < static_cast<double>(min) || value > static_cast<double>(max)) {
    return out_of_range(env, name,
                        ">= " + std::to_string(min) + " && <= " + std::to_string(max),
                        value);
  }
  *out = static_cast<int64_t>(value);
  return true;
}

bool arg_fd(napi_env env, napi_value v, const char* name, int* out) {
  int64_t fd = 0;
  if (!arg_int(env, v, name, 0, INT32_MAX, &fd)) return false;
  *out = static_cast<int>(fd);
  return true;
}

bool arg_bool(napi_env env, napi_value v, const char* name, bool* out) {
  if (!has_type(env, v, napi_boolean)) return invalid_type(env, v, name, "of type boolean");
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_failure(env);
    return false;
  }
  return true;
}

bool arg_bytes(napi_env env, napi_value v, const char* name,
               const void** data, size_t* len) {
  // napi_is_buffer accepts every ArrayBufferView, Buffer being one.
  bool is_view = false;
  if (napi_is_buffer(env, v, &is_view) != napi_ok || !is_view) {
    return invalid_type(env, v, name, "an instance of Buffer, TypedArray, or DataView");
  }
  void* bytes = nullptr;
  if (napi_get_buffer_info(env, v, &bytes, len) != napi_ok) {
    napi_failure(env);
    return false;
  }
  *data = bytes;
  return true;
}

static bool time_keyword(napi_env env, napi_value v, const char* name, long* nsec) {
  char word[8];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, word, sizeof word, &len) != napi_ok) {
    napi_failure(env);
    return false;
  }
  bool whole = strlen(word) == len;  // else "now\0x" would read as "now"
  if (whole && strcmp(word, "now") == 0) {
    *nsec = UTIME_NOW;
    return true;
  }
  if (whole && strcmp(word, "omit") == 0) {
    *nsec = UTIME_OMIT;
    return true;
  }
  std::string message = std::string("The argument '") + name +
                        "' must be [sec, nsec], 'now' or 'omit'";
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message.c_str());
  return false;
}

bool arg_time(napi_env env, napi_value v, const char* name, struct timespec* out) {
  const char* expected = "[sec, nsec], 'now' or 'omit'";
  if (has_type(env, v, napi_string)) {
    out->tv_sec = 0;
    return time_keyword(env, v, name, &out->tv_nsec);
  }
  bool is_array = false;
  uint32_t length = 0;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, v, &length) != napi_ok || length != 2) {
    return invalid_type(env, v, name, expected);
  }
  napi_value sec_value, nsec_value;
  if (napi_get_element(env, v, 0, &sec_value) != napi_ok ||
      napi_get_element(env, v, 1, &nsec_value) != napi_ok) {
    napi_failure(env);
    return false;
  }
  int64_t sec = 0, nsec = 0;
  std::string sec_name = std::string(name) + "[0]";
  std::string nsec_name = std::string(name) + "[1]";
  if (!arg_int(env, sec_value, sec_name.c_str(), -kMaxSafeInteger, kMaxSafeInteger, &sec) ||
      !arg_int(env, nsec_value, nsec_name.c_str(), 0, 999999999, &nsec)) {
    return false;
  }
  out->tv_sec = static_cast<time_t>(sec);
  out->tv_nsec = static_cast<long>(nsec);
  return true;
}

napi_value undefined(napi_env env) {
  napi_value v = nullptr;
  napi_get_undefined(env, &v);
  return v;
}

napi_value number(napi_env env, int64_t n) {
  napi_value v = nullptr;
  SHIM_CHECK(env, napi_create_int64(env, n, &v));
  return v;
}

bool define_function(napi_env env, napi_value target, const char* name,
                     napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok &&
         napi_set_named_property(env, target, name, fn) == napi_ok;
}

bool define_constant(napi_env env, napi_value target, const char* name,
                     int64_t value) {
  napi_value v;
  return napi_create_int64(env, value, &v) == napi_ok &&
         napi_set_named_property(env, target, name, v) == napi_ok;
}

}  // namespace shim
