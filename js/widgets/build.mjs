// Bundles each js/widgets/<name>/index.ts into python/lenslab/widgets/static/<name>.js
// (one self-contained ES module per widget: anywidget loads it as the widget's _esm).
// Usage: node js/widgets/build.mjs [--watch]
import { readdirSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, "../../python/lenslab/widgets/static");
const names = readdirSync(here, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(here, entry.name, "index.ts")))
  .map((entry) => entry.name);

mkdirSync(outdir, { recursive: true });
const options = {
  entryPoints: Object.fromEntries(names.map((name) => [name, join(here, name, "index.ts")])),
  outdir,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
  console.log(`[lenslab] watching ${names.length} widgets`);
} else {
  await esbuild.build(options);
  console.log(`[lenslab] built ${names.length} widgets into ${outdir}: ${names.join(", ")}`);
}
