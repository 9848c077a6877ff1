// The addon's entry point: native-shim gives unionfs-ts the system calls
// node:fs lacks, each synchronous and throwing Node-shaped errors. It keeps
// no state of its own, so it loads safely into worker threads as well.
// `constants` carries the flag values from the system headers; lib/native.ts
// is the typed face of all this.
#include "shim.h"

NAPI_MODULE_INIT() {
  napi_value constants;
  if (napi_create_object(env, &constants) != napi_ok ||
      !shim::register_xattr(env, exports, constants) ||
      !shim::register_inode(env, exports, constants) ||
      !shim::register_data(env, exports, constants) ||
      !shim::register_mount(env, exports, constants) ||
      !shim::register_fdpass(env, exports, constants) ||
      !shim::register_devread(env, exports, constants) ||
      !shim::register_splice(env, exports, constants) ||
      napi_object_freeze(env, constants) != napi_ok ||
      napi_set_named_property(env, exports, "constants", constants) != napi_ok) {
    return shim::napi_failure(env);
  }
  return exports;
}
