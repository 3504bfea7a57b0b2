package main

import (
	"fmt"
	"net"
	"os"

	"github.com/valyala/fasthttp"
)

var body = []byte("Hello, World!")

func main() {
	// Port 0: the kernel picks a free port, so the harness never races another program for one.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBody(body)
		},
		// The same header setting as the storage server, so responses are alike in size.
		NoDefaultServerHeader: true,
	}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
