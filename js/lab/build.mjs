// Builds the prebuilt lab extension into python/lenslab/labextension with @jupyterlab/builder.
// The builder reads JupyterLab's core package.json (shared package versions) from a folder;
// it comes from @jupyterlab/core-meta, so no Python JupyterLab is needed to build.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));
const core = join(root, 'node_modules', '.cache', 'lenslab-core');
mkdirSync(core, { recursive: true });
copyFileSync(require.resolve('@jupyterlab/core-meta/core.package.json'), join(core, 'package.json'));
const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js');
const args = [builder, '--core-path', core, ...process.argv.slice(2), root];
console.log('[lenslab] building the lab extension');
execFileSync(process.execPath, args, { stdio: 'inherit', cwd: root });
// tells `jupyter labextension list` which Python package ships the extension
copyFileSync(join(root, 'js', 'lab', 'install.json'), join(root, 'python', 'lenslab', 'labextension', 'install.json'));
