// Reading the gateway's retry advice from a RESOURCE_EXHAUSTED error (docs/clients.md quotes this file): a
// google.rpc.RetryInfo in the grpc-status-details-bin trailer, and the grpc-retry-pushback-ms trailer.
'use strict';
const protobuf = require('protobufjs'); // a dependency of @grpc/proto-loader

const { root } = protobuf.parse(`
  syntax = "proto3";
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message Duration { int64 seconds = 1; int32 nanos = 2; }
  message RetryInfo { Duration retry_delay = 1; }
`, { keepCase: true });
const Status = root.lookupType('Status');
const RetryInfo = root.lookupType('RetryInfo');

// { delaySeconds, pushbackMs }, each undefined when absent.
function retryAdvice(err) {
  const advice = {};
  const [pushback] = err.metadata.get('grpc-retry-pushback-ms');
  if (pushback !== undefined) advice.pushbackMs = Number(pushback);
  const [details] = err.metadata.get('grpc-status-details-bin');
  if (details) {
    for (const any of Status.decode(details).details) {
      if (any.type_url === 'type.googleapis.com/google.rpc.RetryInfo') {
        const delay = RetryInfo.decode(any.value).retry_delay || {};
        advice.delaySeconds = Number(delay.seconds || 0) + (delay.nanos || 0) / 1e9;
      }
    }
  }
  return advice;
}

module.exports = { retryAdvice };
