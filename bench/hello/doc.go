// Command hello is the HTTP ceiling of `make bench`: a fasthttp server that answers every
// request with "Hello, World!". wrk drives it with the same settings as the storage
// workloads, so each workload can be read as a fraction of what fasthttp, wrk and this machine
// allow with no work behind the request.
//
// It listens on a free loopback port and prints the address (host:port) as its first line of
// stdout; it runs until killed.
package main
