// Package limits is the one set of limits every door of the server shares (REST today; TUS,
// S3 and image rendering beside it later): caps on connections (in all and per client address),
// on uploads and downloads in progress, and timeouts that follow progress instead of counting
// a whole transfer. They apply at the listener and the connection, before any door's handler
// runs, so a door mounted on the same server gets them without code of its own; a door only
// renders the refusals in its wire format.
//
// Timeouts follow progress: while a handler reads a request body, every read may wait at most
// Config.ReadIdle for bytes, and every write of a response at most Config.WriteIdle for the
// client to take them. A transfer of any length and duration succeeds as long as bytes keep
// moving; a stalled one is dropped after the idle time (not after a total duration). The time
// to receive a request's headers stays bounded as a whole: that is the HTTP server's own
// timeout, which this package leaves in place.
//
// Caps fail fast: past a cap the request or connection is refused at once (the doors answer
// 503 with Retry-After), never queued.
package limits
