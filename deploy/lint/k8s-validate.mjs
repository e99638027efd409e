// Validates Kubernetes objects against the API schemas that the kubernetes-models package compiles from
// the Kubernetes OpenAPI spec (types, required fields, enums, formats).
// Usage: node k8s-validate.mjs FILE.yaml   (multi-document YAML, e.g. the output of `kubectl kustomize`)
// Prints one JSON line {"objects": N, "errors": [{"object": "...", "message": "..."}]}; exit 1 on any error.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const file = process.argv[2];
if (!file) {
  console.error("usage: node k8s-validate.mjs FILE.yaml");
  process.exit(2);
}

const errors = [];
let objects = 0;
for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
  if (doc.errors.length) {
    errors.push({ object: "(yaml)", message: doc.errors.map(e => e.message).join("; ") });
    continue;
  }
  const obj = doc.toJS();
  if (obj == null) continue;
  objects++;
  const id = `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    errors.push({ object: id, message: "apiVersion and kind are required" });
    continue;
  }
  // "apps/v1" -> kubernetes-models/apps/v1/Deployment; core "v1" -> kubernetes-models/v1/Service.
  const modulePath = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
  let Model;
  try {
    Model = (await import(modulePath))[obj.kind];
  } catch {
    errors.push({ object: id, message: `no schema for ${obj.apiVersion} ${obj.kind} (unknown or removed API version)` });
    continue;
  }
  // kustomize v5 wraps long base64 values; the API server's base64 decoder ignores line breaks.
  if (obj.kind === "Secret" && obj.data)
    for (const k of Object.keys(obj.data))
      if (typeof obj.data[k] === "string") obj.data[k] = obj.data[k].replace(/[\r\n]/g, "");
  try {
    new Model(obj).validate();
  } catch (e) {
    errors.push({ object: id, message: String(e.message ?? e) });
  }
}
console.log(JSON.stringify({ objects, errors }));
process.exit(errors.length ? 1 : 0);
