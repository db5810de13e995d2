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

// s3rver keeps unfinished multipart uploads (in <bucket>/._S3rver_uploads/<id>/) but implements neither
// ListMultipartUploads nor AbortMultipartUpload, so nothing could see or remove an orphaned upload. These two serve
// them from the same directory, ahead of s3rver's router (requests are not signature-checked here).
const path = require('path');
const xmlEscape = text => String(text).replace(/[<>&'"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);
const uploadsDirectory = bucket => path.join(directory, bucket, '._S3rver_uploads');

// Requests in flight per upload. An abort waits for the upload's part and completion requests to finish before it
// removes the upload's folder: a part written into a folder removed under it fails on a write stream that has no
// error handler, an uncaught exception that ended the server mid-run (the churn bench's cancels hit it while parts
// were uploading, after the existence check below had passed). Parts arriving once the abort has begun get
// NoSuchUpload.
const uploadsInFlight = new Map();
const uploadsAborting = new Set();
const idleWaiters = new Map();
function enterUpload(id) {
  uploadsInFlight.set(id, (uploadsInFlight.get(id) || 0) + 1);
}
function leaveUpload(id) {
  const left = uploadsInFlight.get(id) - 1;
  if (left > 0) {
    uploadsInFlight.set(id, left);
    return;
  }
  uploadsInFlight.delete(id);
  (idleWaiters.get(id) || []).forEach(resolve => resolve());
  idleWaiters.delete(id);
}
function uploadIdle(id) {
  if (!uploadsInFlight.has(id)) return Promise.resolve();
  return new Promise(resolve => idleWaiters.set(id, [...(idleWaiters.get(id) || []), resolve]));
}
const noSuchUpload = ctx => {
  ctx.status = 404;
  ctx.type = 'application/xml';
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>';
};
server.middleware.unshift(async (ctx, next) => {
  // A 5xx says why in the log (s3rver itself runs silent).
  try {
    await next();
  } catch (error) {
    console.error(`${ctx.method} ${ctx.url}: ${error && error.stack || error}`);
    throw error;
  }
  if (ctx.status >= 500) console.error(`${ctx.method} ${ctx.url}: ${ctx.status} ${typeof ctx.body === 'string' ? ctx.body : ''}`);
});
server.middleware.unshift(async (ctx, next) => {
  const segments = ctx.path.split('/').filter(Boolean);
  if (segments.length === 0) return next();
  const bucket = decodeURIComponent(segments[0]);
  if ((ctx.method === 'PUT' || ctx.method === 'POST') && segments.length > 1 && 'uploadId' in ctx.query) {
    // A part or completion for an upload that was aborted: NoSuchUpload (404), as S3 answers, not s3rver's ENOENT 500.
    const uploadId = String(ctx.query.uploadId);
    if (!/^[0-9a-f]+$/.test(uploadId) || uploadsAborting.has(uploadId)) return noSuchUpload(ctx);
    enterUpload(uploadId);
    try {
      try {
        await fs.access(path.join(uploadsDirectory(bucket), uploadId, 'key'));
      } catch {
        return noSuchUpload(ctx);
      }
      return await next();
    } finally {
      leaveUpload(uploadId);
    }
  }
  if (ctx.method === 'DELETE' && segments.length > 1 && 'uploadId' in ctx.query) {
    const uploadId = String(ctx.query.uploadId);
    if (!/^[0-9a-f]+$/.test(uploadId)) {
      ctx.status = 400;
      return;
    }
    const folder = path.join(uploadsDirectory(bucket), uploadId);
    try {
      await fs.access(folder);
    } catch {
      return noSuchUpload(ctx);
    }
    uploadsAborting.add(uploadId);
    try {
      await uploadIdle(uploadId);
      await fs.rm(folder, { recursive: true, force: true });
    } finally {
      uploadsAborting.delete(uploadId);
    }
    ctx.status = 204;
    return;
  }
  if (ctx.method === 'GET' && segments.length === 1 && 'uploads' in ctx.query) {
    const prefix = String(ctx.query.prefix || '');
    let ids = [];
    try {
      ids = await fs.readdir(uploadsDirectory(bucket));
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    const uploads = [];
    for (const id of ids) {
      try {
        const folder = path.join(uploadsDirectory(bucket), id);
        const key = (await fs.readFile(path.join(folder, 'key'))).toString();
        const stat = await fs.stat(folder);
        if (key.startsWith(prefix)) uploads.push({ id, key, initiated: stat.birthtime.toISOString() });
      } catch (error) {
        if (error.code !== 'ENOENT') throw error; // completed or aborted meanwhile
      }
    }
    uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    ctx.type = 'application/xml';
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
      `<Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>` +
      uploads.map(u => `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.id}</UploadId><Initiated>${u.initiated}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`).join('') +
      '</ListMultipartUploadsResult>';
    return;
  }
  return next();
});
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
