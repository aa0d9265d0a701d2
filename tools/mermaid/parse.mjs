// Parse Mermaid diagrams with mermaid's own parser (mermaid.parse), the one GitHub's renderer
// runs. Reads a JSON array of {"name": ..., "text": ...} on stdin and writes a JSON array of
// {"name", "ok", "diagramType" | "error"} on stdout; exit 0 when every diagram parses, 1 when one
// does not, 2 on bad input. Used by tests/test_docs.py.
//
// mermaid sanitizes labels with DOMPurify, which needs a DOM: jsdom provides the window before
// mermaid is loaded (hence the dynamic import). Nothing is rendered; no browser is needed.
import { JSDOM } from 'jsdom';

const { window } = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import('mermaid');

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let diagrams;
try {
  diagrams = JSON.parse(Buffer.concat(chunks).toString('utf8'));
} catch (e) {
  process.stderr.write(`parse.mjs: stdin is not JSON: ${e.message}\n`);
  process.exit(2);
}
mermaid.initialize({ startOnLoad: false });
const results = [];
for (const { name, text } of diagrams) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ name, ok: true, diagramType: parsed.diagramType });
  } catch (e) {
    results.push({ name, ok: false, error: String(e.message ?? e) });
  }
}
process.stdout.write(JSON.stringify(results) + '\n');
process.exit(results.every((r) => r.ok) ? 0 : 1);
