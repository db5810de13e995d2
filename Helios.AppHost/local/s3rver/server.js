// The S3 store of the AppHost's local mode (no container runtime): s3rver on 127.0.0.1:$PORT over a data directory.
//   node server.js <data-directory>
'use strict';

const fs = require('fs/promises');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

// s3rver removes a prefix's directory with its last object; a PUT into that prefix at the same moment then fails
// with an uncaught ENOENT that ends the server. S3 has no directories: deleting objects leaves them in place.
FilesystemStore.prototype.deleteObject = async function deleteObject(bucket, key) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map(kind =>
    fs.unlink(this.getResourcePath(bucket, key, kind)).catch(error => {
      if (error.code !== 'ENOENT') throw error;
    })));
};

const directory = process.argv[2];
const port = Number(process.env.PORT);
if (!directory || !port) {
  console.error('usage: PORT=<port> node server.js <data-directory>');
  process.exit(2);
}

new S3rver({ address: '127.0.0.1', port, directory, silent: true }).run().then(
  () => console.log(`helios S3 store (s3rver) on http://127.0.0.1:${port}, data in ${directory}`),
  error => {
    console.error('s3rver failed to start:', error);
    process.exit(1);
  });
