#!/usr/bin/env node
// Installs the Python package into packages/python-bridge/.venv (created if missing, or fresh
// with --fresh), then runs `mypy --strict` and the pytest suite against a real daemon.
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const venv = join(root, ".venv");
const py = join(venv, "bin", "python");
const run = (file, args, cwd = root) => execFileSync(file, args, { cwd, stdio: "inherit" });

if (process.argv.includes("--fresh")) rmSync(venv, { recursive: true, force: true });
if (!existsSync(py)) run(process.env.PYTHON ?? "python3", ["-m", "venv", venv]);
// setuptools reuses python/build/lib, which would carry modules deleted from src into the wheel.
rmSync(join(root, "python", "build"), { recursive: true, force: true });
run(py, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "./python[test]"]);
const python = join(root, "python");
run(py, ["-m", "mypy", "--strict"], python);
run(py, ["-m", "pytest", "-q", ...process.argv.slice(2).filter((a) => a !== "--fresh")], python);
