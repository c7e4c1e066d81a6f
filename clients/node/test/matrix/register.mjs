// `node --import ./register.mjs`: installs hooks.mjs for the install named by $MATRIX_INSTALL
// (a directory under test/versions/).
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const dir = process.env.MATRIX_INSTALL;
if (!dir) throw new Error('MATRIX_INSTALL (a test/versions/<name> directory) is not set');
register('./hooks.mjs', import.meta.url, { data: { installDir: pathToFileURL(dir.endsWith('/') ? dir : `${dir}/`).href } });
