#!/usr/bin/env node
'use strict'
// The thread pool serves the union's asynchronous fs calls; libuv reads this
// variable once, when the pool is first used, so it is set before anything loads.
process.env.UV_THREADPOOL_SIZE ??= '8'
require('../dist/lib/cli.js').run()
