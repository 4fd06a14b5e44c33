#!/usr/bin/env node
/** Entry point of the `bootfs` executable. */
import { runCli } from './program.js';

const code = await runCli(process.argv.slice(2));
// Let stdout drain before exiting (large --json results, extract to a pipe).
process.exitCode = code;
