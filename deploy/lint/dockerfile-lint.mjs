// Lints Dockerfiles with dockerfile-utils (the validator behind the VS Code Docker extension): syntax,
// unknown instructions, malformed FROM/COPY/USER/EXPOSE..., ARG/stage references.
// Usage: node dockerfile-lint.mjs FILE...   Prints JSON {"FILE": [{"line", "severity", "message"}]};
// exit 1 when any file has an error or a warning.
import { readFileSync } from "node:fs";
import { validate } from "dockerfile-utils";

const severities = { 1: "error", 2: "warning", 3: "information", 4: "hint" };
const result = {};
let bad = false;
for (const file of process.argv.slice(2)) {
  const diagnostics = validate(readFileSync(file, "utf8"), {}).map(d => ({
    line: d.range.start.line + 1,
    severity: severities[d.severity] ?? String(d.severity),
    message: d.message,
  }));
  if (diagnostics.some(d => d.severity === "error" || d.severity === "warning")) bad = true;
  result[file] = diagnostics;
}
console.log(JSON.stringify(result));
process.exit(bad ? 1 : 0);
