// Package s3test runs a real S3 server for tests: versitygw v1.8.0 with its POSIX backend in a
// temporary directory, listening on loopback. Tests that need S3 call Start, or StartServer
// from a TestMain to share one server across a package. The binary is found via $VERSITYGW,
// PATH, or GOBIN/GOPATH/bin; install it with `make versitygw` (InstallCommand).
package s3test
