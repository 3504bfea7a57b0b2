package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.sig-_nature"
	for _, tc := range []struct{ in, want string }{
		{"no secret here", "no secret here"},
		{"token " + jwt + " end", "token [REDACTED] end"},
		{`invalid request uri "/object/sign/b/k?token=abc.def&x=1"`, `invalid request uri "/object/sign/b/k?token=[REDACTED]&x=1"`},
		{`GET /x?apikey=k1&access_token=k2&X-Amz-Signature=k3&X-Amz-Credential=k4 HTTP/1.1`,
			`GET /x?apikey=[REDACTED]&access_token=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED] HTTP/1.1`},
		{`"GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\napikey: sb_secret_x\r\nCookie: a=b; c=d\r\nHost: h\r\n"`,
			`"GET / HTTP/1.1\r\nAuthorization: [REDACTED]\r\napikey: [REDACTED]\r\nCookie: [REDACTED]\r\nHost: h\r\n"`},
		{"authorization: Bearer secret\nnext", "authorization: [REDACTED]\nnext"},
		{`invalid header value "sb_secret_\"x\x00"`, `invalid header value [REDACTED]`},
		{`invalid trailer value "s"; more`, `invalid trailer value [REDACTED]; more`},
	} {
		require.Equal(t, tc.want, redact(tc.in), tc.in)
	}
}
