package s3

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// Fuzz targets for what S3 requests carry (`make fuzz`; the seeds also run as plain tests).
// Signatures in seeds are made here with crypto/hmac, from AWS's documented algorithm, not
// with the code under test; the fuzzer cannot forge one, so whatever verifies must carry the
// signed content unchanged.

// requireS3ClientError asserts err is one of the door's refusals with a 4xx status.
func requireS3ClientError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "error %T %v is not an *Error", err, err)
	require.True(t, e.Status >= 400 && e.Status < 500, "status %d for %v", e.Status, err)
}

func fuzzHMAC(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// fuzzKey is SigV4's signing key of testSK for the test day in us-east-1.
func fuzzKey() []byte {
	day := testNow.Format("20060102")
	return fuzzHMAC(fuzzHMAC(fuzzHMAC(fuzzHMAC([]byte("AWS4"+testSK), day), "us-east-1"), "s3"), "aws4_request")
}

var fuzzScope = testNow.Format("20060102") + "/us-east-1/s3/aws4_request"

// fuzzSign signs a canonical request built by hand.
func fuzzSign(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(fuzzHMAC(fuzzKey(), sigAlgorithm+"\n"+testNow.Format(amzDateLayout)+"\n"+fuzzScope+"\n"+hex.EncodeToString(sum[:])))
}

var fuzzMethods = []string{"GET", "PUT", "POST", "DELETE", "HEAD"}

// FuzzVerify: a request's SigV4 signature (header or presigned query) is refused with a 4xx,
// or it verified, and then the method, path, query, host, date and declared payload are the
// ones a seed signed.
func FuzzVerify(f *testing.F) {
	const host, path = "s3.example.com", "/s3/b/k.txt"
	date := testNow.Format(amzDateLayout)
	credential := testAK + "/" + fuzzScope
	// Header mode: GET with a query, signing host, x-amz-content-sha256 and x-amz-date.
	query := "list-type=2&prefix=a%20b"
	headerSig := fuzzSign("GET\n" + path + "\nlist-type=2&prefix=a%20b\nhost:" + host + "\nx-amz-content-sha256:" + emptySHA +
		"\nx-amz-date:" + date + "\n\nhost;x-amz-content-sha256;x-amz-date\n" + emptySHA)
	auth := sigAlgorithm + " Credential=" + credential + ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + headerSig
	f.Add(byte(0), path, query, auth, date, emptySHA, host)
	f.Add(byte(0), path, query, auth, date, emptySHA, "S3.example.com")
	f.Add(byte(0), path, "prefix=a%20b&list-type=2", auth, date, emptySHA, host)
	f.Add(byte(1), path, query, strings.ReplaceAll(auth, ", ", ","), date, emptySHA, host)
	// Presigned: the signature in the query, over UNSIGNED-PAYLOAD and host.
	pq := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + url.QueryEscape(credential) + "&X-Amz-Date=" + date +
		"&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
	presigned := pq + "&X-Amz-Signature=" + fuzzSign("GET\n"+path+"\n"+
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="+uriEncode(credential)+"&X-Amz-Date="+date+
		"&X-Amz-Expires=300&X-Amz-SignedHeaders=host\nhost:"+host+"\n\nhost\n"+unsignedPayload)
	f.Add(byte(0), path, presigned, "", "", "", host)
	f.Add(byte(0), path, presigned+"&X-Amz-Security-Token=x", "", "", "", host)
	f.Add(byte(0), path, strings.Replace(presigned, "Expires=300", "Expires=604801", 1), "", "", "", host)
	f.Add(byte(0), path, "", sigAlgorithm+" Credential=a/b/c/d, SignedHeaders=, Signature=", "20260801", "x", host)
	f.Add(byte(0), path, "", "AWS4-HMAC-SHA256 Credential="+credential+",SignedHeaders=host,Signature=00", "20260801T000000Z", "UNSIGNED-PAYLOAD", host)
	seed := func(method, path, query, date, payload, host string) string {
		return method + "\n" + path + "\n" + parseQuery([]byte(query)).canonical() + "\n" + date + "\n" + payload + "\n" + host
	}
	signedContent := []string{seed("GET", path, query, date, emptySHA, host), seed("GET", path, presigned, "", "", host)}
	cfg := testAuthConfig()
	f.Fuzz(func(t *testing.T, method byte, path, query, authorization, amzDate, payload, host string) {
		var req fasthttp.Request
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req.Header.SetMethod(m)
		req.SetRequestURI(path)
		req.URI().SetQueryString(query)
		req.Header.SetHost(host)
		for name, v := range map[string]string{"Authorization": authorization, "X-Amz-Date": amzDate, "X-Amz-Content-Sha256": payload} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		sig, err := verify(&ctx, cfg)
		if err != nil {
			requireS3ClientError(t, err)
			return
		}
		h := &ctx.Request.Header
		got := seed(m, string(ctx.Request.URI().PathOriginal()), string(ctx.URI().QueryString()),
			string(h.Peek("X-Amz-Date")), string(h.Peek("X-Amz-Content-Sha256")), string(h.Host()))
		if sig.Presigned {
			got = seed(m, string(ctx.Request.URI().PathOriginal()), string(ctx.URI().QueryString()), "", "", string(h.Host()))
		}
		require.Contains(t, signedContent, got, "verified content no seed signed")
		require.Len(t, sig.Seed, 64)
	})
}

// FuzzQuery: the canonical query is a fixed point (canonicalizing its own parse gives it
// back), and RFC 3986 encoding decodes to what was encoded.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"", "a=1&b=2", "b=2&a=1&a=3", "x", "=v", "%zz=%", "a+b=c+d", "k=%E2%9C%93", "a=1&&b", "X-Amz-Signature=x&y=1"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c := parseQuery([]byte(raw)).canonical()
		require.Equal(t, c, parseQuery([]byte(c)).canonical())
		d, err := url.PathUnescape(uriEncode(raw))
		require.NoError(t, err)
		require.Equal(t, raw, d)
	})
}

// encodeChunked frames data as aws-chunked in chunks of size (the last shorter), signing
// each chunk with the signature chain from seed when signed, and ends it with an optional
// trailer line and its signature.
func encodeChunked(data []byte, size int, signed bool, seed, trailer string) (body []byte, last string) {
	var b bytes.Buffer
	prev := seed
	prefix := "AWS4-HMAC-SHA256-PAYLOAD\n" + testNow.Format(amzDateLayout) + "\n" + fuzzScope + "\n"
	chunk := func(d []byte) {
		b.WriteString(strconv.FormatInt(int64(len(d)), 16))
		if signed {
			sum := sha256.Sum256(d)
			prev = hex.EncodeToString(fuzzHMAC(fuzzKey(), prefix+prev+"\n"+emptySHA+"\n"+hex.EncodeToString(sum[:])))
			b.WriteString(";chunk-signature=" + prev)
		}
		b.WriteString("\r\n")
		if len(d) > 0 {
			b.Write(d)
			b.WriteString("\r\n")
		}
	}
	for size > 0 && len(data) > 0 {
		n := min(size, len(data))
		chunk(data[:n])
		data = data[n:]
	}
	chunk(nil)
	if trailer != "" {
		b.WriteString(trailer + "\r\n")
		if signed {
			sum := sha256.Sum256([]byte(trailer + "\n"))
			sig := hex.EncodeToString(fuzzHMAC(fuzzKey(), "AWS4-HMAC-SHA256-TRAILER\n"+testNow.Format(amzDateLayout)+"\n"+fuzzScope+"\n"+prev+"\n"+hex.EncodeToString(sum[:])))
			b.WriteString(trailerSignatureHeader + ":" + sig + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes(), prev
}

var fuzzAlgorithms = []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailer}

// FuzzChunked: an aws-chunked body is refused with a 4xx (as Read's error, never a bare
// io error), or decodes to exactly x-amz-decoded-content-length bytes; with chunk signatures
// only the data a seed signed decodes, and a trailer's checksum is the decoded data's. The
// data itself, framed and signed here, decodes back to itself.
func FuzzChunked(f *testing.F) {
	seed := strings.Repeat("5e", 32)
	crc := func(d []byte) string { h, _ := newChecksum("crc32"); h.Write(d); return checksumValue(h) }
	datas := [][]byte{nil, []byte("hello, world"), bytes.Repeat([]byte("0123456789"), 30)}
	for _, d := range datas {
		body, _ := encodeChunked(d, 7, true, seed, "")
		f.Add(byte(0), "", int64(len(d)), body)
		body, _ = encodeChunked(d, 100, true, seed, "x-amz-checksum-crc32:"+crc(d))
		f.Add(byte(1), "x-amz-checksum-crc32", int64(len(d)), body)
		body, _ = encodeChunked(d, 5, false, "", "x-amz-checksum-crc32:"+crc(d))
		f.Add(byte(2), "x-amz-checksum-crc32", int64(len(d)), body)
		body, _ = encodeChunked(d, 5, false, "", "")
		f.Add(byte(2), "", int64(len(d)), body)
	}
	f.Add(byte(2), "", int64(3), []byte("3\r\nabc\r\n0\r\n\r\nx"))
	f.Add(byte(2), "", int64(3), []byte("03;chunk-signature=zz\r\nabc\r\n0\r\n\r\n"))
	f.Add(byte(2), "x-amz-checksum-sha256", int64(0), []byte("0\r\nx-amz-checksum-sha256:AAAA\r\n\r\n"))
	f.Add(byte(0), "", int64(-1), []byte("0\r\n\r\n"))
	f.Add(byte(2), "", int64(1<<40), []byte("fffffffffffffffff\r\n"))
	sig := signed{SigningKey: fuzzKey(), Seed: seed, Date: testNow.Format(amzDateLayout), Scope: fuzzScope}
	f.Fuzz(func(t *testing.T, alg byte, trailer string, decodedLength int64, body []byte) {
		algorithm := fuzzAlgorithms[int(alg)%len(fuzzAlgorithms)]
		c, e := newChunkedBody(bytes.NewReader(body), sig, algorithm, trailer, decodedLength)
		if e != nil {
			requireS3ClientError(t, e)
		} else {
			decoded, err := io.ReadAll(c)
			if err != nil {
				requireS3ClientError(t, err)
			} else {
				require.Equal(t, decodedLength, int64(len(decoded)))
				if algorithm != streamingUnsignedTrailer {
					require.True(t, slices.ContainsFunc(datas, func(d []byte) bool { return bytes.Equal(d, decoded) }),
						"signed chunks decoded to data no seed signed: %q", decoded)
				}
				if alg, value := c.checksumResult(); alg != "" {
					h, ok := newChecksum(alg)
					require.True(t, ok)
					h.Write(decoded)
					require.Equal(t, checksumValue(h), value)
				}
			}
		}
		// The round trip: body as data, framed and signed here.
		size := 1 + int(decodedLength&0xff)
		framed, _ := encodeChunked(body, size, true, seed, "")
		c, e = newChunkedBody(bytes.NewReader(framed), sig, streamingSigned, "", int64(len(body)))
		require.Nil(t, e)
		decoded, err := io.ReadAll(c)
		if len(body) > 0 && size > maxChunkSize {
			return
		}
		require.NoError(t, err)
		require.Equal(t, body, decoded)
	})
}

// FuzzXMLDocuments: DeleteObjects' and CompleteMultipartUpload's documents are refused with a
// 4xx or read into keys the database can store (UTF-8 text without NUL) that the answer's XML
// carries back unchanged, and part numbers from 1 to 10000.
func FuzzXMLDocuments(f *testing.F) {
	for _, doc := range []string{
		`<Delete><Object><Key>a</Key></Object><Object><Key>b/c d</Key></Object><Quiet>true</Quiet></Delete>`,
		`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b&#xD;&#10;c</Key></Object></Delete>`,
		`<Delete><Object></Object></Delete>`, `<Delete></Delete>`, `<Delete><Object><Key></Key></Object></Delete>`,
		`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>`,
		`<Delete><Object><Key>a</Key></Object></Delete><Delete/>`, "\xef\xbb\xbf<Delete><Object><Key>k</Key></Object></Delete>",
		`<Delete><Object><Key><![CDATA[<x>]]></Key></Object></Delete>`, `<Delete><Object><Key>&#0;</Key></Object></Delete>`,
		`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"abc"</ETag></Part><Part><PartNumber> 2 </PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><PartNumber>0</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload></CompleteMultipartUpload>`, ``, `   `, `<a>`, `not xml`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		names, _, err := parseDeleteRequest(doc, 1000)
		if err != nil {
			requireS3ClientError(t, err)
		} else {
			require.NotEmpty(t, names)
			w := newXML("DeleteResult")
			for _, k := range names {
				require.True(t, utf8.ValidString(k) && strings.IndexByte(k, 0) < 0, "%q", k)
				w.open("Deleted")
				w.elem("Key", k)
				w.close("Deleted")
			}
			var answer struct {
				Deleted []struct{ Key string } `xml:"Deleted"`
			}
			require.NoError(t, xml.Unmarshal(w.bytes(), &answer))
			require.Len(t, answer.Deleted, len(names))
			for i, k := range names {
				require.Equal(t, k, answer.Deleted[i].Key)
			}
		}
		numbers, etags, err := parseCompleteRequest(doc)
		if err != nil {
			requireS3ClientError(t, err)
			return
		}
		require.Len(t, etags, len(numbers))
		for i, n := range numbers {
			require.True(t, n >= 1 && n <= 10000, "part %d", n)
			require.True(t, utf8.ValidString(etags[i]) && strings.IndexByte(etags[i], 0) < 0, "%q", etags[i])
		}
	})
}

// FuzzListParams: a listing's query is refused with a 4xx or read into a page size from 1 to
// 1000; a continuation token is refused or gives a resume point the database can store, and
// the token this server writes for a resume point gives it back.
func FuzzListParams(f *testing.F) {
	f.Add("max-keys=10&prefix=a/&delimiter=/&encoding-type=url", encodeToken("a/b", false))
	f.Add("max-keys=0", encodeToken("a", true))
	f.Add("max-keys=-1&encoding-type=xml", base64.StdEncoding.EncodeToString([]byte("l:a\x00")))
	f.Add("max-keys=99999999999999999999", base64.StdEncoding.EncodeToString([]byte("x:y\nl:\xff")))
	f.Add("prefix=%ff", "%%%")
	f.Fuzz(func(t *testing.T, query, token string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/s3/b?" + query)
		p, err := parseListParams(&ctx)
		if err != nil {
			requireS3ClientError(t, err)
		} else {
			require.True(t, p.maxKeys >= 1 && p.maxKeys <= maxKeys, "max-keys %d", p.maxKeys)
		}
		after, err := decodeToken(token)
		if err != nil {
			requireS3ClientError(t, err)
			return
		}
		require.True(t, utf8.ValidString(after) && strings.IndexByte(after, 0) < 0, "resume point %q", after)
		if !strings.Contains(after, "\n") {
			for _, continued := range []bool{false, true} {
				again, err := decodeToken(encodeToken(after, continued))
				require.NoError(t, err)
				require.Equal(t, after, again)
			}
		}
	})
}

// FuzzCopySource: x-amz-copy-source is refused with a 4xx or names a bucket and a key, and
// x-amz-copy-source-range is refused or a non-empty part inside the source.
func FuzzCopySource(f *testing.F) {
	for _, s := range []string{"/b/k", "b/dir/k%20x", "b", "/b/", "b/k?versionId=1", "b/k?x=1", "%zz/k", "b/%zz", "/%2F/k", "b/k%00"} {
		f.Add(s, "bytes=0-9", int64(10))
	}
	f.Add("b/k", "bytes=5-4", int64(10))
	f.Add("b/k", "bytes=0-10", int64(10))
	f.Add("b/k", "bytes=-1", int64(10))
	f.Add("b/k", "bytes=9223372036854775806-9223372036854775807", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, source, rng string, size int64) {
		bucket, key, err := copySource(source)
		switch {
		case errors.Is(err, errNotImplemented): // a version named: S3's 501, as the reference
			require.Contains(t, source, "?versionId=")
		case err != nil:
			requireS3ClientError(t, err)
		default:
			require.NotEmpty(t, bucket)
			require.NotEmpty(t, key)
		}
		if size < 0 {
			size = -(size + 1)
		}
		offset, length, err := copyRange([]byte(rng), size)
		if err != nil {
			requireS3ClientError(t, err)
			return
		}
		require.GreaterOrEqual(t, offset, int64(0))
		require.GreaterOrEqual(t, length, int64(1))
		require.LessOrEqual(t, offset, size-length)
	})
}

// FuzzPostPolicy: a browser upload's form is refused with a 4xx or read up to its file part;
// its policy (signed here, whatever it says, so every condition is reached) is refused with a
// 4xx or accepted, and then every field is covered by a condition or is an authentication
// field, and the size range is sane.
func FuzzPostPolicy(f *testing.F) {
	form := func(fields [][2]string, file string) string {
		var b strings.Builder
		for _, kv := range fields {
			b.WriteString("--XX\r\nContent-Disposition: form-data; name=\"" + kv[0] + "\"\r\n\r\n" + kv[1] + "\r\n")
		}
		b.WriteString("--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n" + file + "\r\n--XX--\r\n")
		return b.String()
	}
	fields := [][2]string{{"key", "dir/${filename}"}, {"Content-Type", "text/plain"}, {"x-amz-meta-a", "1"}, {"success_action_status", "201"}}
	// all covers every field of the form.
	all := `{"bucket":"b"},["starts-with","$key",""],["starts-with","$Content-Type",""],["starts-with","$x-amz-meta-a",""],["starts-with","$success_action_status",""]`
	for _, policy := range []string{
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","dir/"],{"content-type":"text/plain"},["eq","$x-amz-meta-a","1"],["starts-with","$success_action_status",""],["content-length-range",1,100]]}`,
		`{"expiration":"2000-01-01T00:00:00Z","conditions":[]}`, `{"expiration":"2100-01-01T00:00:00Z"}`,
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[` + all + `,["content-length-range",0,1e19]]}`,
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[` + all + `,["content-length-range",1e19,1e19]]}`,
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[` + all + `,["content-length-range",0.5,1.5]]}`,
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[` + all + `,["content-length-range",5,1]]}`,
		`{"expiration":"2100-01-01T00:00:00Z","conditions":[{"key":1}, ["in","$key","x"]]}`, `[]`, `x`,
	} {
		f.Add("multipart/form-data; boundary=XX", form(fields, "DATA"), policy)
	}
	f.Add("multipart/form-data", "", "{}")
	f.Add("multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XX--\r\n", "{}")
	f.Add("text/plain", "x", "{}")
	date := testNow.Format(amzDateLayout)
	cfg := testAuthConfig()
	auth := map[string]bool{"policy": true, "x-amz-signature": true, "file": true, "x-amz-algorithm": true,
		"x-amz-credential": true, "x-amz-date": true, "x-amz-security-token": true}
	f.Fuzz(func(t *testing.T, contentType, body, policy string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType(contentType)
		ctx.Request.SetBodyString(body)
		fm, e := readForm(&ctx)
		if e != nil {
			requireS3ClientError(t, e)
			return
		}
		require.NotNil(t, fm.file)
		encoded := base64.StdEncoding.EncodeToString([]byte(policy))
		fm.fields["policy"] = encoded
		fm.fields["x-amz-credential"] = testAK + "/" + fuzzScope
		fm.fields["x-amz-date"] = date
		fm.fields["x-amz-signature"] = hex.EncodeToString(fuzzHMAC(fuzzKey(), encoded))
		_, pol, e := verifyForm(fm, cfg, "b")
		if e != nil {
			requireS3ClientError(t, e)
			return
		}
		require.GreaterOrEqual(t, pol.minSize, int64(0))
		require.True(t, pol.maxSize == -1 || pol.maxSize >= pol.minSize, "content-length-range %d–%d", pol.minSize, pol.maxSize)
		var doc struct{ Conditions []any }
		require.NoError(t, jsonUnmarshal([]byte(policy), &doc))
		// The range in bytes is the policy's, exactly: a size passes iff it lies within the
		// (last) content-length-range's numbers.
		var last []any
		for _, c := range doc.Conditions {
			if arr, ok := c.([]any); ok && len(arr) == 3 && strings.EqualFold(fmt.Sprint(arr[0]), "content-length-range") {
				last = arr
			}
		}
		if last != nil {
			lo, hi := last[1].(float64), last[2].(float64)
			for _, n := range []int64{0, 1, pol.minSize - 1, pol.minSize, pol.minSize + 1, pol.maxSize - 1, pol.maxSize, pol.maxSize + 1} {
				if n >= 0 && n < 1<<53 {
					require.Equal(t, float64(n) >= lo && float64(n) <= hi, n >= pol.minSize && n <= pol.maxSize,
						"%d bytes in [%v, %v] as %d–%d", n, lo, hi, pol.minSize, pol.maxSize)
				}
			}
		}
		for name := range fm.fields {
			if auth[name] || strings.HasPrefix(name, "x-ignore-") {
				continue
			}
			require.True(t, coveredBy(doc.Conditions, name), "field %q accepted without a condition", name)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// coveredBy reports whether a policy condition names the field (lower-cased, as the form's).
func coveredBy(conditions []any, name string) bool {
	for _, c := range conditions {
		switch c := c.(type) {
		case map[string]any:
			for k := range c {
				if strings.ToLower(k) == name {
					return true
				}
			}
		case []any:
			if len(c) == 3 {
				if target, ok := c[1].(string); ok && strings.ToLower(strings.TrimPrefix(target, "$")) == name {
					return true
				}
			}
		}
	}
	return false
}
