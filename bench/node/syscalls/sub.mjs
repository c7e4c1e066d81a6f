// Counts what arrives on channel 'ns' for SECONDS, then prints it.
import { connect } from '../../../clients/node/src/index.js';

const [address, seconds] = process.argv.slice(2);
const client = connect({ address });
let received = 0;
await client.subscribe('ns', () => received++);
setTimeout(() => {
  console.log(`subscriber received ${received}`);
  client.close();
}, Number(seconds) * 1000);
