#!/usr/bin/env node
// Runs s3rver for one test process and exits as soon as that process is gone, so a test host that is killed (or
// exits before its fixtures are disposed) leaves no S3 server behind.
//   node s3rver-for-test.js <owner-pid> <data-directory> <port>
'use strict';

const fs = require('fs/promises');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

// s3rver removes a "directory" once its last object is deleted. A PUT into the same prefix at that moment has just
// made the directory and then opens its file in it: ENOENT on a write stream without an error handler, an uncaught
// exception that ended the server mid-run (a stale part deleted while another worker uploads to the same export, or
// a cancel). S3 has no directories; deleting objects here leaves the empty ones in place.
FilesystemStore.prototype.deleteObject = async function deleteObject(bucket, key) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map(kind =>
    fs.unlink(this.getResourcePath(bucket, key, kind)).catch(error => {
      if (error.code !== 'ENOENT') throw error;
    })));
};

const [ownerPid, directory, port] = process.argv.slice(2);
if (!ownerPid || !directory || !port) {
  console.error('usage: node s3rver-for-test.js <owner-pid> <data-directory> <port>');
  process.exit(2);
}

function ownerAlive() {
  try {
    process.kill(Number(ownerPid), 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true });
server.run().then(
  () => console.log(`s3rver listening on 127.0.0.1:${port} for process ${ownerPid}`),
  error => {
    console.error('s3rver failed to start:', error);
    process.exit(1);
  });

setInterval(() => {
  if (!ownerAlive()) {
    console.log(`process ${ownerPid} is gone; stopping`);
    process.exit(0);
  }
}, 1000);

process.on('uncaughtException', error => {
  console.error('uncaught exception:', error);
  process.exit(70);
});
process.on('unhandledRejection', error => {
  console.error('unhandled rejection:', error);
});
