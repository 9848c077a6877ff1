# Builds native-shim/build/Release/unionfs_shim.node, loaded by lib/native.ts.
# Node-API only (node_api.h), so one build serves every Node version that
# speaks NAPI_VERSION 8; the libuv calls in errors.cc resolve against the
# symbols the node executable exports.
{
  "targets": [
    {
      "target_name": "unionfs_shim",
      "sources": [
        "src/addon.cc",
        "src/args.cc",
        "src/errors.cc",
        "src/xattr.cc",
        "src/inode.cc",
        "src/data.cc",
        "src/mount.cc",
        "src/fdpass.cc",
        "src/devread.cc",
        "src/splice.cc"
      ],
      "defines": ["NAPI_VERSION=8", "_FILE_OFFSET_BITS=64"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
