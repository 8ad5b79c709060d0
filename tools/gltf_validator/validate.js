#!/usr/bin/env node
// Validate glTF 2.0 files (.glb or .gltf) with the Khronos glTF validator.
//
// Usage: node validate.js FILE [FILE ...]
// Prints one JSON object: {"validator": version, "files": [{"path", "errors", "warnings",
// "infos", "hints", "messages": [first issues at warning level or worse]}]}.
// Exit status: 0 when no file has an error, 1 when any file has one, 2 on bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const validator = require('gltf-validator');

const MAX_MESSAGES = 20;

async function validateFile(file) {
  const bytes = new Uint8Array(fs.readFileSync(file));
  const report = await validator.validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues: 1000,
    externalResourceFunction: (uri) =>
      new Promise((resolve, reject) => {
        const resolved = path.resolve(path.dirname(file), decodeURIComponent(uri));
        fs.readFile(resolved, (err, data) => (err ? reject(err.toString()) : resolve(data)));
      }),
  });
  const issues = report.issues;
  return {
    path: file,
    errors: issues.numErrors,
    warnings: issues.numWarnings,
    infos: issues.numInfos,
    hints: issues.numHints,
    // severity: 0 error, 1 warning, 2 info, 3 hint
    messages: issues.messages
      .filter((m) => m.severity <= 1)
      .slice(0, MAX_MESSAGES)
      .map((m) => ({ code: m.code, severity: m.severity, pointer: m.pointer, message: m.message })),
  };
}

async function main(argv) {
  if (argv.length === 0) {
    console.error('usage: node validate.js FILE [FILE ...]');
    return 2;
  }
  const files = [];
  for (const file of argv) {
    try {
      files.push(await validateFile(file));
    } catch (err) {
      files.push({ path: file, errors: 1, warnings: 0, infos: 0, hints: 0,
        messages: [{ code: 'UNREADABLE', severity: 0, pointer: '', message: String(err) }] });
    }
  }
  console.log(JSON.stringify({ validator: validator.version(), files: files }, null, 2));
  return files.some((f) => f.errors > 0) ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code));
