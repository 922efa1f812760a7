#!/usr/bin/env node
// The `sbx-gateway` command. A committed file, so package managers can link it before the first build.
import "../dist/cli.js";
