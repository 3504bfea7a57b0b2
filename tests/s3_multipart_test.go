package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/lifecycle"
	s3door "github.com/pgstorage/storage/s3"
)

// The S3 door's multipart uploads (S3.md §6; §8 assertions 37 and 69–79) and aws-chunked
// bodies (§2.9; assertions 22–28) on the wire, with the raw client of s3_wire_test.go, on both
// blob backends: every answer byte for byte, then what each step left in the database and in
// the blob store. Where this server deliberately answers otherwise than the reference, the
// step says so next to its number. Then the refusals (each stores and leaks nothing), parts
// and completions racing across goroutines and servers, expiry by the collector, and a
// session-token user under RLS. The AWS SDK's upload manager is in s3_manager_test.go.

// mib5 is S3's smallest part but the last.
const mib5 = 5 << 20

// mpUpload is a multipart upload as its client knows it: where, its UploadId, who signs.
type mpUpload struct {
	b           *httpBundle
	bucket, key string
	id          string
	creds       s3Creds
}

// uploadIDPattern finds the UploadId of an InitiateMultipartUploadResult.
var uploadIDPattern = regexp.MustCompile(`<UploadId>([^<]+)</UploadId>`)

// mpCreate starts an upload of bucket/key with the server-wide keys (§8 assertion 69's answer).
func (b *httpBundle) mpCreate(t *testing.T, bucket, key string, header ...[2]string) *mpUpload {
	t.Helper()
	return b.mpCreateAs(t, s3Keys, bucket, key, header...)
}

// mpCreateAs starts an upload signed by creds and asserts the whole answer.
func (b *httpBundle) mpCreateAs(t *testing.T, creds s3Creds, bucket, key string, header ...[2]string) *mpUpload {
	t.Helper()
	r := b.s3("POST", "/s3/"+bucket+"/"+s3Escape(key)+"?uploads").as(creds)
	r.header = header
	resp := r.send(t)
	m := uploadIDPattern.FindSubmatch(resp.Body)
	require.NotNil(t, m, "%s", resp)
	id := string(m[1])
	requireS3XML(t, resp, 200, s3Doc("InitiateMultipartUploadResult",
		"<Bucket>"+bucket+"</Bucket><Key>"+key+"</Key><UploadId>"+id+"</UploadId>"))
	return &mpUpload{b: b, bucket: bucket, key: key, id: id, creds: creds}
}

// on is the same upload driven through another server.
func (u *mpUpload) on(b *httpBundle) *mpUpload {
	c := *u
	c.b = b
	return &c
}

// as is the same upload driven by other credentials.
func (u *mpUpload) as(c s3Creds) *mpUpload {
	d := *u
	d.creds = c
	return &d
}

// resource is the Resource of error documents about the upload's key.
func (u *mpUpload) resource() string { return u.bucket + "/" + s3Escape(u.key) }

// req starts a request to the upload's key with query.
func (u *mpUpload) req(method, query string) *s3Req {
	return u.b.s3(method, "/s3/"+u.bucket+"/"+s3Escape(u.key)+"?"+query).as(u.creds)
}

func (u *mpUpload) partQuery(n int) string {
	return "partNumber=" + strconv.Itoa(n) + "&uploadId=" + u.id
}

// put uploads body as part n.
func (u *mpUpload) put(t *testing.T, n int, body string) httpResponse {
	t.Helper()
	return u.req("PUT", u.partQuery(n)).with(body).send(t)
}

// mustPut uploads body as part n and asserts §8 assertion 70's answer; it returns the ETag.
func (u *mpUpload) mustPut(t *testing.T, n int, body string) string {
	t.Helper()
	r := u.put(t, n, body)
	requireS3Empty(t, r, 200)
	require.Equal(t, quotedMD5(body), r.Header.Get("ETag"))
	// The server's CORS list of exposed headers, which names etag first.
	require.Equal(t, "etag", strings.Split(r.Header.Get("Access-Control-Expose-Headers"), ", ")[0])
	return r.Header.Get("ETag")
}

// mpPart is a part as CompleteMultipartUpload lists it.
type mpPart struct {
	n    int
	etag string
}

// completeDoc is a CompleteMultipartUpload document listing parts.
func completeDoc(parts ...mpPart) string {
	var b strings.Builder
	b.WriteString("<CompleteMultipartUpload>")
	for _, p := range parts {
		fmt.Fprintf(&b, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", p.n, p.etag)
	}
	b.WriteString("</CompleteMultipartUpload>")
	return b.String()
}

// complete sends CompleteMultipartUpload with doc as its body ("" = none).
func (u *mpUpload) complete(t *testing.T, doc string) httpResponse {
	t.Helper()
	r := u.req("POST", "uploadId="+u.id)
	if doc != "" {
		r.h("Content-Type", "application/xml").with(doc)
	}
	return r.send(t)
}

// completedDoc is the answer of a completion whose object has etag.
func (u *mpUpload) completedDoc(etag string) string {
	return s3Doc("CompleteMultipartUploadResult", "<Location>"+u.bucket+"/"+u.key+"</Location><Bucket>"+u.bucket+
		"</Bucket><Key>"+u.key+"</Key><ETag>"+etag+"</ETag>")
}

// mustComplete completes the upload with parts and asserts §8 assertion 72's answer, whose
// ETag is that of the parts' bodies.
func (u *mpUpload) mustComplete(t *testing.T, doc string, bodies ...string) {
	t.Helper()
	requireS3XML(t, u.complete(t, doc), 200, u.completedDoc(multipartETag(bodies...)))
}

func (u *mpUpload) abort(t *testing.T) httpResponse {
	t.Helper()
	return u.req("DELETE", "uploadId="+u.id).send(t)
}

// listParts sends ListParts with extra query parameters ("" = none).
func (u *mpUpload) listParts(t *testing.T, query string) httpResponse {
	t.Helper()
	q := "uploadId=" + u.id
	if query != "" {
		q += "&" + query
	}
	return u.req("GET", q).send(t)
}

// partsDoc is the ListPartsResult of the upload: marker, next marker ("" = not truncated),
// max and the parts' elements.
func (u *mpUpload) partsDoc(marker int, next string, max int, parts string) string {
	inner := "<Bucket>" + u.bucket + "</Bucket><Key>" + u.key + "</Key><UploadId>" + u.id + "</UploadId>" +
		"<PartNumberMarker>" + strconv.Itoa(marker) + "</PartNumberMarker>"
	if next != "" {
		inner += "<NextPartNumberMarker>" + next + "</NextPartNumberMarker>"
	}
	inner += "<MaxParts>" + strconv.Itoa(max) + "</MaxParts><IsTruncated>" + strconv.FormatBool(next != "") + "</IsTruncated>" +
		parts + "<StorageClass>STANDARD</StorageClass>"
	return s3Doc("ListPartsResult", inner)
}

// partElem is a Part of ListParts for body uploaded as part n.
func partElem(n int, body string) string {
	return "<Part><PartNumber>" + strconv.Itoa(n) + "</PartNumber><LastModified>TIME</LastModified><ETag>" +
		quotedMD5(body) + "</ETag><Size>" + strconv.Itoa(len(body)) + "</Size></Part>"
}

// multipartETag is the ETag of an object completed from parts with these bodies, on both
// backends: the MD5 of the parts' MD5s, a dash, and the number of parts.
func multipartETag(bodies ...string) string {
	h := md5.New()
	for _, b := range bodies {
		sum := md5.Sum([]byte(b))
		h.Write(sum[:])
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(bodies)) + `"`
}

// initiatedStamp matches ListMultipartUploads' Initiated timestamps (ISO 8601 UTC with
// milliseconds), which requireUploadsXML replaces by TIME.
var initiatedStamp = regexp.MustCompile(`<Initiated>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</Initiated>`)

// requireUploadsXML is requireS3XML for ListMultipartUploadsResult documents.
func requireUploadsXML(t *testing.T, r httpResponse, want string) {
	t.Helper()
	r.Body = initiatedStamp.ReplaceAll(r.Body, []byte("<Initiated>TIME</Initiated>"))
	requireS3XML(t, r, 200, want)
}

// uploadElem is an Upload of ListMultipartUploads.
func uploadElem(u *mpUpload) string {
	return "<Upload><Key>" + u.key + "</Key><UploadId>" + u.id + "</UploadId><StorageClass>STANDARD</StorageClass>" +
		"<Initiated>TIME</Initiated></Upload>"
}

// requireNoUploads asserts that no multipart upload is left anywhere: no upload or part row,
// and none of their pieces in the blob store (its leftovers).
func (o *objEnv) requireNoUploads(t *testing.T) {
	t.Helper()
	require.Empty(t, o.column(t, `select bucket_id || '/' || name from storage.s3_multipart_uploads`), "storage.s3_multipart_uploads")
	require.Empty(t, o.column(t, `select version || ' ' || part_number from storage.s3_multipart_parts`), "storage.s3_multipart_parts")
	require.Empty(t, storeLeftovers(t, o.blobs), "leftovers in the blob store")
}

// storeLeftovers lists the store's leftovers (multipart uploads in progress among them).
func storeLeftovers(t *testing.T, s blob.Store) []string {
	t.Helper()
	var ids []string
	require.NoError(t, s.Leftovers(context.Background(), func(l blob.Leftover) error {
		ids = append(ids, l.ID)
		return nil
	}))
	return ids
}

// partRows are an upload's part rows as "<number> <etag> <size>".
func (o *objEnv) partRows(t *testing.T, u *mpUpload) []string {
	t.Helper()
	return o.column(t, `select part_number || ' ' || etag || ' ' || size from storage.s3_multipart_parts
		where version = $1 order by part_number`, u.id)
}

func partRow(n int, body string) string {
	return strconv.Itoa(n) + " " + md5Hex(body) + " " + strconv.Itoa(len(body))
}

// s3Second starts another server on o's database and blob store, its S3 door configured as
// setupHTTP's, and returns a bundle whose requests go to it.
func (o *objEnv) s3Second(t *testing.T) *httpBundle {
	t.Helper()
	anon := o.anon
	base := o.secondServer(t, withS3(func(c *s3door.Config) {
		*c = s3door.Config{AccessKeyID: s3TestAccessKey, SecretKey: s3TestSecretKey, Region: s3TestRegion, AnonKey: anon}
	}))
	b := *o.httpBundle
	b.baseURL = base
	return &b
}

// sendAsync is send for goroutines other than the test's: it fails nothing, a transport
// failure is its error.
func (r *s3Req) sendAsync() (httpResponse, error) {
	req, err := http.NewRequest(r.method, r.b.baseURL+r.target, strings.NewReader(r.body))
	if err != nil {
		return httpResponse{}, err
	}
	for _, h := range r.header {
		req.Header.Add(h[0], h[1])
	}
	payload := sha256Hex(r.body)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := s3Signer().SignHTTP(context.Background(), r.credentials(), req, payload, r.service, r.region, r.at); err != nil {
		return httpResponse{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpResponse{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}, err
}

// ---------------------------------------------------------------------------------------------
// aws-chunked bodies.

// awsChunked writes an aws-chunked body as a client does: each chunk signed in a chain that
// starts at the request's signature (the seed), with the AWS SDK's stream signer, unless
// the algorithm is unsigned.
type awsChunked struct {
	t      *testing.T
	signer *v4.StreamSigner // nil: unsigned chunks
	at     time.Time
	buf    bytes.Buffer
	sigs   []string // the chunk signatures written, in order
}

// chunk writes one chunk of data (the final one when data is empty).
func (c *awsChunked) chunk(data []byte) *awsChunked {
	c.buf.WriteString(strconv.FormatInt(int64(len(data)), 16))
	if c.signer != nil {
		sig, err := c.signer.GetSignature(context.Background(), nil, data, c.at)
		require.NoError(c.t, err)
		c.sigs = append(c.sigs, hex.EncodeToString(sig))
		c.buf.WriteString(";chunk-signature=" + c.sigs[len(c.sigs)-1])
	}
	c.buf.WriteString("\r\n")
	c.buf.Write(data)
	if len(data) > 0 {
		c.buf.WriteString("\r\n")
	}
	return c
}

// chunks writes data in chunks of size bytes (the last one shorter), then the final chunk.
func (c *awsChunked) chunks(data []byte, size int) *awsChunked {
	for len(data) > 0 {
		n := min(size, len(data))
		c.chunk(data[:n])
		data = data[n:]
	}
	return c.chunk(nil)
}

// end closes the body after the final chunk: the trailer lines ("name:value"), then an empty
// line.
func (c *awsChunked) end(trailer ...string) []byte {
	for _, l := range trailer {
		c.buf.WriteString(l + "\r\n")
	}
	c.buf.WriteString("\r\n")
	return c.buf.Bytes()
}

// flip changes one hex digit of the signature sig in body.
func flip(t *testing.T, body []byte, sig string) {
	t.Helper()
	i := bytes.Index(body, []byte(sig))
	require.GreaterOrEqual(t, i, 0)
	if body[i] == '0' {
		body[i] = '1'
	} else {
		body[i] = '0'
	}
}

// crc32Trailer is the trailer line of data's CRC32.
func crc32Trailer(data []byte) string {
	return "x-amz-checksum-crc32:" + base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
}

var signaturePattern = regexp.MustCompile(`Signature=([0-9a-f]{64})`)

// sendChunked signs r with alg as its payload hash, declaring aws-chunked content of decoded
// bytes, then sends the body that build writes once the seed signature is known.
func (r *s3Req) sendChunked(t *testing.T, alg string, decoded int, build func(c *awsChunked) []byte) httpResponse {
	t.Helper()
	r.h("Content-Encoding", "aws-chunked").h("X-Amz-Decoded-Content-Length", strconv.Itoa(decoded))
	r.payload = alg
	r.tamper = func(req *http.Request) {
		c := &awsChunked{t: t, at: r.at}
		if alg != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
			m := signaturePattern.FindStringSubmatch(req.Header.Get("Authorization"))
			require.NotNil(t, m, "Authorization %q", req.Header.Get("Authorization"))
			seed, err := hex.DecodeString(m[1])
			require.NoError(t, err)
			c.signer = v4.NewStreamSigner(r.credentials(), "s3", r.region, seed)
		}
		body := build(c)
		req.Body, req.GetBody = io.NopCloser(bytes.NewReader(body)), nil
		req.ContentLength = int64(len(body))
	}
	return r.send(t)
}

// ---------------------------------------------------------------------------------------------
// §8 assertions 69–79 and 37.

// TestS3MultipartWire: §8 assertions 69–79 and 37, one step after another on one server per
// backend (each step sees what the steps before it made), then what is left in the database
// and the store.
func TestS3MultipartWire(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)

		// 69: the answer names the bucket, the key and the upload; presigned, refused.
		u := o.mpCreate(t, "b", "k", [2]string{"x-amz-meta-k", "v"}, [2]string{"Content-Type", "text/plain"},
			[2]string{"Cache-Control", "max-age=5"})
		requireS3Error(t, o.s3("POST", "/s3/b/k?uploads").presigned(t), 400, "b/k", "InvalidRequest",
			"Headers must have required property 'authorization'")
		require.Equal(t, []string{"b/k " + u.id}, o.column(t, `select bucket_id || '/' || name || ' ' || version from storage.s3_multipart_uploads`))
		require.Equal(t, []string{u.id}, o.inFlight(t), "the upload is in flight until it completes")

		// 70: parts; their number's bounds; an unknown upload.
		p1, p2 := string(blobtestBytes(mib5, 1)), string(blobtestBytes(1000, 2))
		e1, e2 := u.mustPut(t, 1, p1), u.mustPut(t, 2, p2)
		for q, msg := range map[string]string{
			"partNumber=10001": "Querystring, partNumber must be &lt;= 10000", // "<" escaped (§3.1)
			"partNumber=0":     "Querystring, partNumber must be &gt;= 1",
			"partNumber=x":     "Querystring, partNumber must be integer",
		} {
			requireS3Error(t, u.req("PUT", q+"&uploadId="+u.id).with("x").send(t), 400, "b/k", "InvalidRequest", msg)
		}
		requireS3Error(t, o.s3("PUT", "/s3/b/k?partNumber=1&uploadId=00000000-0000-4000-8000-000000000000").with("x").send(t),
			404, "b/k", "NoSuchUpload", "Upload not found")
		// Deliberately not the reference, which stores the body as the object: a PUT with only
		// one of uploadId and partNumber is refused.
		requireS3Error(t, u.req("PUT", "uploadId="+u.id).with("x").send(t), 400, "b/k", "InvalidRequest",
			"A part upload needs both partNumber and uploadId")
		requireS3Error(t, u.req("PUT", "partNumber=1").with("x").send(t), 400, "b/k", "InvalidRequest",
			"A part upload needs both partNumber and uploadId")
		require.Equal(t, []string{partRow(1, p1), partRow(2, p2)}, o.partRows(t, u))

		// 71: pages of parts (deliberately with AWS's Size); an unknown upload.
		requireS3XML(t, u.listParts(t, "max-parts=1"), 200, u.partsDoc(0, "1", 1, partElem(1, p1)))
		requireS3XML(t, u.listParts(t, "part-number-marker=1"), 200, u.partsDoc(1, "", 1000, partElem(2, p2)))
		requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, p1)+partElem(2, p2)))
		requireS3Error(t, o.s3("GET", "/s3/b/k?uploadId=00000000-0000-4000-8000-000000000000").send(t), 404, "b/k",
			"NoSuchUpload", "Upload not found")
		requireS3Error(t, u.listParts(t, "max-parts=0"), 400, "b/k", "InvalidRequest", "Querystring, max-parts must be &gt;= 1")
		requireS3Error(t, u.listParts(t, "part-number-marker=x"), 400, "b/k", "InvalidRequest", "Querystring, part-number-marker must be integer")
		requireS3XML(t, u.listParts(t, "max-parts=5000"), 200, u.partsDoc(0, "", 1000, partElem(1, p1)+partElem(2, p2)))

		// 73: malformed documents are refused and the upload stays.
		requireS3Error(t, u.complete(t, "<CompleteMultipartUpload><Part></CompleteMultipartUpload>"), 400, "b/k", "MalformedXML",
			"Invalid XML payload: XML syntax error on line 1: element &lt;Part&gt; closed by &lt;/CompleteMultipartUpload&gt;")
		requireS3Error(t, u.complete(t, "<CompleteMultipartUpload><Part><PartNumber/><ETag>"+e1+"</ETag></Part></CompleteMultipartUpload>"),
			400, "b/k", "InvalidRequest", "Body, CompleteMultipartUpload, Part, 0, PartNumber must be an integer from 1 to 10000")
		requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, p1)+partElem(2, p2)))
		require.False(t, o.objectRow(t, "b", "k"))

		// 72: complete; the object has the upload's headers and metadata, the multipart ETag on
		// both backends; a second completion finds no upload.
		u.mustComplete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2}), p1, p2)
		etag := multipartETag(p1, p2)
		head := o.s3("HEAD", "/s3/b/k").send(t)
		requireS3Empty(t, head, 200)
		requireObjectHeaders(t, head, map[string]string{"Content-Length": strconv.Itoa(mib5 + 1000), "ETag": etag,
			"x-amz-meta-k": "v", "Content-Type": "text/plain", "Cache-Control": "max-age=5"})
		got := o.s3("GET", "/s3/b/k").send(t)
		require.Equal(t, 200, got.Status)
		require.True(t, p1+p2 == string(got.Body), "GET returned other bytes")
		require.Equal(t, etag+" "+strconv.Itoa(mib5+1000)+" "+u.id+` {"k": "v"}`,
			o.row(t, "b", "k", `(metadata->>'eTag') || ' ' || (metadata->>'size') || ' ' || version || ' ' || user_metadata::text`))
		requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2})), 404, "b/k", "NoSuchUpload", "Upload not found")
		requireS3Error(t, u.listParts(t, ""), 404, "b/k", "NoSuchUpload", "Upload not found")
		requireS3Error(t, u.put(t, 3, "late"), 404, "b/k", "NoSuchUpload", "Upload not found")

		// 74: no document: every part, by number.
		one := o.mpCreate(t, "b", "one")
		one.mustPut(t, 1, "the only part")
		requireS3XML(t, one.complete(t, ""), 200, one.completedDoc(multipartETag("the only part")))
		require.Equal(t, "the only part", string(o.s3("GET", "/s3/b/one").send(t).Body))

		// 75: a part copied from a range of an object; ranges S3 does not take.
		o.s3Put(t, "b", "src", "0123456789")
		cp := o.mpCreate(t, "b", "copied")
		copyPart := func(rng string) httpResponse {
			return cp.req("PUT", cp.partQuery(1)).h("x-amz-copy-source", "b/src").h("x-amz-copy-source-range", rng).send(t)
		}
		requireS3XML(t, copyPart("bytes=2-5"), 200, s3Doc("CopyPartResult", "<ETag>"+quotedMD5("2345")+"</ETag><LastModified>TIME</LastModified>"))
		for _, rng := range []string{"bytes=-5", "bytes=5-", "bytes=5-10", "bytes=6-5", "items=0-1"} {
			requireS3Error(t, copyPart(rng), 400, "b/copied", "InvalidRange", "invalid range provided")
		}
		require.Equal(t, []string{partRow(1, "2345")}, o.partRows(t, cp))
		requireS3XML(t, cp.complete(t, completeDoc(mpPart{1, quotedMD5("2345")})), 200, cp.completedDoc(multipartETag("2345")))
		require.Equal(t, "2345", string(o.s3("GET", "/s3/b/copied").send(t).Body))

		// 77: deliberately AWS's 204 (the reference: 200); again, and completing it, find no
		// upload; listings no longer show it.
		gone := o.mpCreate(t, "b", "gone")
		gone.mustPut(t, 1, "doomed")
		requireS3Empty(t, gone.abort(t), 204)
		requireS3Error(t, gone.abort(t), 404, "b/gone", "NoSuchUpload", "Upload not found")
		requireS3Error(t, gone.complete(t, ""), 404, "b/gone", "NoSuchUpload", "Upload not found")
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=gone").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><Prefix>gone</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"))
		require.False(t, o.objectRow(t, "b", "gone"))

		// 78: deliberately AWS's <Bucket> and plain markers (the reference: <Name>, base64).
		a := o.mpCreate(t, "b", "p/a.bin")
		bb := o.mpCreate(t, "b", "p/b.bin")
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2F").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><Prefix>p/</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"+
				uploadElem(a)+uploadElem(bb)))
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2F&max-uploads=1").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><NextKeyMarker>p/a.bin</NextKeyMarker><NextUploadIdMarker>"+a.id+
				"</NextUploadIdMarker><Prefix>p/</Prefix><MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated>"+uploadElem(a)))
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2F&max-uploads=1&key-marker=p%2Fa.bin").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>b</Bucket><KeyMarker>p/a.bin</KeyMarker><UploadIdMarker/><Prefix>p/</Prefix><MaxUploads>1</MaxUploads>"+
				"<IsTruncated>false</IsTruncated>"+uploadElem(bb)))
		// Both markers, as SDK paginators send them: the uploads after that one, in key order.
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2F&key-marker=p%2Fa.bin&upload-id-marker="+a.id).send(t),
			s3Doc("ListMultipartUploadsResult", "<Bucket>b</Bucket><KeyMarker>p/a.bin</KeyMarker><UploadIdMarker>"+a.id+
				"</UploadIdMarker><Prefix>p/</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"+uploadElem(bb)))
		// Two uploads of one key page one at a time through the upload-id marker.
		a2 := o.mpCreate(t, "b", "p/a.bin")
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2F&max-uploads=1&key-marker=p%2Fa.bin&upload-id-marker="+a.id).send(t),
			s3Doc("ListMultipartUploadsResult", "<Bucket>b</Bucket><KeyMarker>p/a.bin</KeyMarker><UploadIdMarker>"+a.id+
				"</UploadIdMarker><NextKeyMarker>p/a.bin</NextKeyMarker><NextUploadIdMarker>"+a2.id+"</NextUploadIdMarker>"+
				"<Prefix>p/</Prefix><MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated>"+uploadElem(a2)))

		// Prefixes match bytes as they are (deliberately not the reference's case-insensitive
		// ILIKE, in which "_" matches any character); encoding-type=url encodes keys and prefixes.
		sp := o.mpCreate(t, "b", "p/sp ace.bin")
		for _, prefix := range []string{"P/", "p_"} {
			requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix="+s3Escape(prefix)).send(t), s3Doc("ListMultipartUploadsResult",
				"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><Prefix>"+prefix+"</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"))
		}
		requireUploadsXML(t, o.s3("GET", "/s3/b?uploads&prefix=p%2Fs&encoding-type=url").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><Prefix>p%2Fs</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"+
				"<Upload><Key>p%2Fsp%20ace.bin</Key><UploadId>"+sp.id+"</UploadId><StorageClass>STANDARD</StorageClass><Initiated>TIME</Initiated></Upload>"+
				"<EncodingType>url</EncodingType>"))

		// 79: a delimiter folds keys into common prefixes; max-uploads=0 is refused.
		o.s3Bucket(t, "d")
		var inD []*mpUpload
		for _, k := range []string{"test-1.jpg", "test-2.jpg", "nested/test-4.jpg"} {
			inD = append(inD, o.mpCreate(t, "d", k))
		}
		requireUploadsXML(t, o.s3("GET", "/s3/d?uploads&delimiter=%2F").send(t), s3Doc("ListMultipartUploadsResult",
			"<Bucket>d</Bucket><KeyMarker/><UploadIdMarker/><Delimiter>/</Delimiter><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"+
				uploadElem(inD[0])+uploadElem(inD[1])+"<CommonPrefixes><Prefix>nested/</Prefix></CommonPrefixes>"))
		requireS3Error(t, o.s3("GET", "/s3/d?uploads&max-uploads=0").send(t), 400, "d", "InvalidRequest",
			"Querystring, max-uploads must be &gt;= 1")
		requireS3Error(t, o.s3("GET", "/s3/nob?uploads").send(t), 404, "nob", "NoSuchBucket", "Bucket not found")

		// 37: a pending upload keeps its bucket; once none is left, the bucket goes.
		requireS3Error(t, o.s3("DELETE", "/s3/d").send(t), 409, "d", "ResourceReferenced",
			"The bucket could not be updated because it is referenced by a pending multipart upload.")
		_, ok := loadStoredBucket(t, o.db, "d")
		require.True(t, ok)
		for _, x := range inD {
			requireS3Empty(t, x.abort(t), 204)
		}
		requireS3Empty(t, o.s3("DELETE", "/s3/d").send(t), 204)

		// Left: the completed objects, nothing of the uploads once the others are aborted.
		for _, x := range []*mpUpload{a, bb, a2, sp} {
			requireS3Empty(t, x.abort(t), 204)
		}
		o.requireNoUploads(t)
		o.requireNothingStored(t, "b/copied", "b/k", "b/one", "b/src")
	})
}

// ---------------------------------------------------------------------------------------------
// §8 assertions 22–28: aws-chunked bodies.

// TestS3ChunkedWire: §8 assertions 22–28 on both backends, each refusal leaving no object.
func TestS3ChunkedWire(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		data := blobtestBytes(123, 22)
		put := func(key string) *s3Req { return o.s3("PUT", "/s3/b/"+key) }
		requireAbsent := func(key string) {
			t.Helper()
			requireS3Empty(t, o.s3("HEAD", "/s3/b/"+key).send(t), 404)
			require.False(t, o.objectRow(t, "b", key))
		}

		// 22: one signed chunk and the final one.
		r := put("c22").sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 123, func(c *awsChunked) []byte {
			return c.chunk(data).chunk(nil).end()
		})
		requireS3Empty(t, r, 200)
		require.Equal(t, quotedMD5(string(data)), r.Header.Get("ETag"))
		head := o.s3("HEAD", "/s3/b/c22").send(t)
		requireS3Empty(t, head, 200)
		require.Equal(t, "123", head.Header.Get("Content-Length"))
		require.Equal(t, string(data), string(o.s3("GET", "/s3/b/c22").send(t).Body))

		// 23: a chunk signature altered.
		r = put("c23").sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 123, func(c *awsChunked) []byte {
			body := c.chunk(data).chunk(nil).end()
			flip(t, body, c.sigs[0])
			return body
		})
		requireS3Error(t, r, 403, "b/c23", "SignatureDoesNotMatch", msgSigMismatch)
		requireAbsent("c23")

		// 24: no final chunk.
		r = put("c24").sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 123, func(c *awsChunked) []byte {
			return c.chunk(data).buf.Bytes()
		})
		requireS3Error(t, r, 400, "b/c24", "InvalidRequest", "Missing final chunk")
		requireAbsent("c24")

		// 25: a trailer announced and not sent.
		r = put("c25").h("X-Amz-Trailer", "x-amz-checksum-crc32").sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", 123,
			func(c *awsChunked) []byte { return c.chunk(data).chunk(nil).buf.Bytes() })
		requireS3Error(t, r, 400, "b/c25", "InvalidRequest", "Incomplete trailer section")
		requireAbsent("c25")

		// 26: deliberately not the reference (which stores the body whatever its trailer says):
		// a wrong CRC32 in the trailer stores nothing; the right one stores the body.
		r = put("c26").h("X-Amz-Trailer", "x-amz-checksum-crc32").sendChunked(t, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 123,
			func(c *awsChunked) []byte { return c.chunks(data, 100).end(crc32Trailer([]byte("other"))) })
		requireS3Error(t, r, 400, "b/c26", "BadDigest", "The CRC32 you specified did not match the calculated checksum.")
		requireAbsent("c26")
		r = put("c26").h("X-Amz-Trailer", "x-amz-checksum-crc32").sendChunked(t, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 123,
			func(c *awsChunked) []byte { return c.chunks(data, 100).end(crc32Trailer(data)) })
		requireS3Empty(t, r, 200)
		require.Equal(t, string(data), string(o.s3("GET", "/s3/b/c26").send(t).Body))

		// 27: a streaming algorithm that does not exist.
		r = put("c27").sendChunked(t, "STREAMING-UNSIGNED-PAYLOAD", 123, func(c *awsChunked) []byte {
			return c.chunk(data).chunk(nil).end()
		})
		requireS3Error(t, r, 400, "b/c27", "InvalidRequest", "Invalid streaming algorithm: STREAMING-UNSIGNED-PAYLOAD")
		requireAbsent("c27")

		// 28: an aws-chunked part.
		u := o.mpCreate(t, "b", "c28")
		r = u.req("PUT", u.partQuery(1)).sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 123, func(c *awsChunked) []byte {
			return c.chunks(data, 50).end()
		})
		requireS3Empty(t, r, 200)
		require.Equal(t, quotedMD5(string(data)), r.Header.Get("ETag"))
		requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, string(data))))
		u.mustComplete(t, "", string(data))
		require.Equal(t, string(data), string(o.s3("GET", "/s3/b/c28").send(t).Body))

		o.requireNoUploads(t)
		o.requireNothingStored(t, "b/c22", "b/c26", "b/c28")
	})
}

// ---------------------------------------------------------------------------------------------
// Refusals: each stores nothing and leaks nothing, and the upload stays usable.

func TestS3MultipartRefusals(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "PartTooSmall", func(t *testing.T, o *objEnv) {
			// On both backends (the file store has no minimum of its own): every part but the
			// last must be 5 MiB.
			u := o.mpCreate(t, "b", "small")
			small, last := string(blobtestBytes(mib5-1, 1)), "last"
			e1, e2 := u.mustPut(t, 1, small), u.mustPut(t, 2, last)
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2})), 400, "b/small", "EntityTooSmall",
				"Your proposed upload is smaller than the minimum allowed size (PartNumber 1 is 5242879 bytes; every part but the last must be at least 5 MiB)")
			requireS3Error(t, u.complete(t, ""), 400, "b/small", "EntityTooSmall",
				"Your proposed upload is smaller than the minimum allowed size (PartNumber 1 is 5242879 bytes; every part but the last must be at least 5 MiB)")
			require.False(t, o.objectRow(t, "b", "small"))
			// A part uploaded again replaces the earlier one, and the upload completes.
			big := string(blobtestBytes(mib5, 2))
			e1 = u.mustPut(t, 1, big)
			require.Equal(t, []string{partRow(1, big), partRow(2, last)}, o.partRows(t, u))
			u.mustComplete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2}), big, last)
			require.True(t, big+last == string(o.s3("GET", "/s3/b/small").send(t).Body))
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/small")
		})

		be.run(t, "PartListWrong", func(t *testing.T, o *objEnv) {
			u := o.mpCreate(t, "b", "list")
			p1, p2 := string(blobtestBytes(mib5, 3)), "two"
			e1, e2 := u.mustPut(t, 1, p1), u.mustPut(t, 2, p2)
			requireS3Error(t, u.complete(t, completeDoc(mpPart{2, e2}, mpPart{1, e1})), 400, "b/list", "InvalidPartOrder",
				"The list of parts was not in ascending order. The parts list must be specified in order by part number.")
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{1, e1})), 400, "b/list", "InvalidPartOrder",
				"The list of parts was not in ascending order. The parts list must be specified in order by part number.")
			const invalidPart = "One or more of the specified parts could not be found. The part may not have been uploaded, " +
				"or the specified entity tag may not match the part's entity tag. (PartNumber %d)"
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, quotedMD5("other")})), 400, "b/list", "InvalidPart",
				fmt.Sprintf(invalidPart, 2))
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{3, e2})), 400, "b/list", "InvalidPart",
				fmt.Sprintf(invalidPart, 3))
			require.False(t, o.objectRow(t, "b", "list"))
			require.Equal(t, []string{partRow(1, p1), partRow(2, p2)}, o.partRows(t, u))
			// ETags are compared without their quotes, as S3 does.
			u.mustComplete(t, completeDoc(mpPart{1, strings.Trim(e1, `"`)}, mpPart{2, e2}), p1, p2)
			require.True(t, p1+p2 == string(o.s3("GET", "/s3/b/list").send(t).Body))
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/list")
		})

		be.run(t, "CompleteAborted", func(t *testing.T, o *objEnv) {
			u := o.mpCreate(t, "b", "aborted")
			e1 := u.mustPut(t, 1, string(blobtestBytes(mib5, 4)))
			e2 := u.mustPut(t, 2, "end")
			require.Len(t, storeLeftovers(t, o.blobs), 1, "the upload's pieces in the store")
			requireS3Empty(t, u.abort(t), 204)
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2})), 404, "b/aborted", "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.put(t, 3, "more"), 404, "b/aborted", "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.listParts(t, ""), 404, "b/aborted", "NoSuchUpload", "Upload not found")
			o.requireNoUploads(t)
			o.requireNothingStored(t)
			require.Equal(t, []string{u.id}, o.freedVersions(t), "the aborted upload's version is queued for the collector")
		})

		be.run(t, "BodyRefused", func(t *testing.T, o *objEnv) {
			// A part whose body is not what its request declared (a chunk signature tampered
			// with, a wrong trailer checksum, SHA-256, Content-MD5 or x-amz-checksum-crc32) leaves
			// the part it would have replaced as it was.
			u := o.mpCreate(t, "b", "chunked")
			first := string(blobtestBytes(mib5, 5))
			u.mustPut(t, 1, first)
			other := blobtestBytes(mib5, 6)
			r := u.req("PUT", u.partQuery(1)).sendChunked(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", mib5, func(c *awsChunked) []byte {
				body := c.chunks(other, 1<<20).end()
				flip(t, body, c.sigs[3])
				return body
			})
			requireS3Error(t, r, 403, "b/chunked", "SignatureDoesNotMatch", msgSigMismatch)
			r = u.req("PUT", u.partQuery(2)).h("X-Amz-Trailer", "x-amz-checksum-crc32").sendChunked(t, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 1000,
				func(c *awsChunked) []byte { return c.chunks(other[:1000], 512).end(crc32Trailer(other[:999])) })
			requireS3Error(t, r, 400, "b/chunked", "BadDigest", "The CRC32 you specified did not match the calculated checksum.")
			wrongHash := u.req("PUT", u.partQuery(1)).with("replacement")
			wrongHash.payload = sha256Hex("something else")
			requireS3Error(t, wrongHash.send(t), 400, "b/chunked", "XAmzContentSHA256Mismatch",
				"The provided 'x-amz-content-sha256' header does not match what was computed.")
			sum := md5.Sum([]byte("something else"))
			requireS3Error(t, u.req("PUT", u.partQuery(1)).with("replacement").h("Content-MD5", base64.StdEncoding.EncodeToString(sum[:])).send(t),
				400, "b/chunked", "BadDigest", "The Content-MD5 you specified did not match what we received.")
			requireS3Error(t, u.req("PUT", u.partQuery(1)).with("replacement").
				h("x-amz-checksum-crc32", strings.TrimPrefix(crc32Trailer([]byte("something else")), "x-amz-checksum-crc32:")).send(t),
				400, "b/chunked", "BadDigest", "The CRC32 you specified did not match the calculated checksum.")
			require.Equal(t, []string{partRow(1, first)}, o.partRows(t, u))
			requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, first)))
			u.mustComplete(t, "", first)
			require.True(t, first == string(o.s3("GET", "/s3/b/chunked").send(t).Body))
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/chunked")
		})

		be.run(t, "SizeLimit", func(t *testing.T, o *objEnv) {
			// The bucket's limit counts the parts there are (a part uploaded again counts once),
			// before any of a part's bytes move.
			o.mkBucket(t, `{"name":"lim","file_size_limit":6291456}`) // 6 MiB
			u := o.mpCreate(t, "lim", "big")
			p1 := string(blobtestBytes(mib5, 7))
			e1 := u.mustPut(t, 1, p1)
			requireS3Error(t, u.put(t, 2, string(blobtestBytes(2<<20, 8))), 413, "lim/big", "EntityTooLarge",
				"The object exceeded the maximum allowed size")
			require.Equal(t, []string{partRow(1, p1)}, o.partRows(t, u))
			e1 = u.mustPut(t, 1, p1)
			p2 := string(blobtestBytes(1<<20, 9))
			e2 := u.mustPut(t, 2, p2)
			requireS3Error(t, u.put(t, 3, "x"), 413, "lim/big", "EntityTooLarge", "The object exceeded the maximum allowed size")
			u.mustComplete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2}), p1, p2)
			require.Equal(t, strconv.Itoa(6<<20), o.row(t, "lim", "big", `metadata->>'size'`))
			o.requireNoUploads(t)
			o.requireNothingStored(t, "lim/big")
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

func TestS3MultipartConcurrency(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "PartsFromManyClients", func(t *testing.T, o *objEnv) {
			// Eight parts at once from eight goroutines, half of them through a second server.
			servers := []*httpBundle{o.httpBundle, o.s3Second(t)}
			u := o.mpCreate(t, "b", "many.bin")
			const n = 8
			bodies := make([]string, n)
			for i := range bodies {
				size := mib5
				if i == n-1 {
					size = 12345
				}
				bodies[i] = string(blobtestBytes(size, uint64(100+i)))
			}
			resps := make([]httpResponse, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					resps[i], errs[i] = u.on(servers[i%2]).req("PUT", u.partQuery(i+1)).with(bodies[i]).sendAsync()
				})
			}
			close(start)
			wg.Wait()
			var parts []mpPart
			for i := range n {
				require.NoError(t, errs[i], "part %d", i+1)
				requireS3Empty(t, resps[i], 200)
				require.Equal(t, quotedMD5(bodies[i]), resps[i].Header.Get("ETag"), "part %d", i+1)
				parts = append(parts, mpPart{i + 1, resps[i].Header.Get("ETag")})
			}
			u.on(servers[1]).mustComplete(t, completeDoc(parts...), bodies...)
			size, sum := o.downloadSHA256(t, "b", "many.bin")
			require.Equal(t, int64(7*mib5+12345), size)
			require.Equal(t, sha256Hex(strings.Join(bodies, "")), sum)
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/many.bin")
		})

		be.run(t, "CompletionsRacing", func(t *testing.T, o *objEnv) {
			// Two completions of one upload at once, through two servers: one object, one 200,
			// the other a 200 too or an S3 refusal, never a 5xx.
			servers := []*httpBundle{o.httpBundle, o.s3Second(t)}
			var keys []string
			for round := range 3 {
				key := fmt.Sprintf("race-%d.bin", round)
				keys = append(keys, "b/"+key)
				u := o.mpCreate(t, "b", key)
				p1, p2 := string(blobtestBytes(mib5, uint64(200+round))), string(blobtestBytes(777, uint64(300+round)))
				doc := completeDoc(mpPart{1, u.mustPut(t, 1, p1)}, mpPart{2, u.mustPut(t, 2, p2)})
				var resps [2]httpResponse
				var errs [2]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						<-start
						resps[i], errs[i] = u.on(servers[i]).req("POST", "uploadId="+u.id).h("Content-Type", "application/xml").with(doc).sendAsync()
					})
				}
				close(start)
				wg.Wait()
				ok := 0
				for i, r := range resps {
					require.NoError(t, errs[i])
					if r.Status == 200 {
						ok++
						requireS3XML(t, r, 200, u.completedDoc(multipartETag(p1, p2)))
						continue
					}
					require.Contains(t, []int{404, 409}, r.Status, "round %d: %s", round, r)
					require.Regexp(t, `<Code>(NoSuchUpload|OperationAborted)</Code>`, string(r.Body))
				}
				require.GreaterOrEqual(t, ok, 1, "round %d: %s / %s", round, resps[0], resps[1])
				require.True(t, p1+p2 == string(o.s3("GET", "/s3/b/"+key).send(t).Body), "round %d", round)
				require.Equal(t, multipartETag(p1, p2)+" "+u.id, o.row(t, "b", key, `(metadata->>'eTag') || ' ' || version`))
			}
			o.requireNoUploads(t)
			o.requireNothingStored(t, keys...)
		})

		be.run(t, "AbortWhilePartStreams", func(t *testing.T, o *objEnv) {
			// An upload aborted under a part: the part finds no upload, and nothing of it stays.
			u := o.mpCreate(t, "b", "aborted.bin")
			u.mustPut(t, 1, string(blobtestBytes(mib5, 400)))
			r := o.partWhile(t, u, 2, string(blobtestBytes(1<<20, 401)), func() {
				requireS3Empty(t, u.abort(t), 204)
			})
			requireS3Error(t, r, 404, "b/aborted.bin", "NoSuchUpload", "Upload not found")
			o.requireNoUploads(t)
			o.requireNothingStored(t)
		})

		be.run(t, "CompleteWhilePartStreams", func(t *testing.T, o *objEnv) {
			// An upload completed under a part that would replace one of its parts: the object
			// has the parts the completion listed, the late part finds no upload.
			u := o.mpCreate(t, "b", "done.bin")
			p1, p2 := string(blobtestBytes(mib5, 402)), string(blobtestBytes(1000, 403))
			doc := completeDoc(mpPart{1, u.mustPut(t, 1, p1)}, mpPart{2, u.mustPut(t, 2, p2)})
			r := o.partWhile(t, u, 2, string(blobtestBytes(2000, 404)), func() {
				u.mustComplete(t, doc, p1, p2)
			})
			requireS3Error(t, r, 404, "b/done.bin", "NoSuchUpload", "Upload not found")
			require.True(t, p1+p2 == string(o.s3("GET", "/s3/b/done.bin").send(t).Body))
			require.Equal(t, multipartETag(p1, p2), o.row(t, "b", "done.bin", `metadata->>'eTag'`))
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/done.bin")
		})
	})
}

// gatedStore is a real blob store whose PutPart holds a part still once its first bytes have
// reached the store, until the test releases it: a part mid-stream at the moment the test
// chooses, while other requests (through another server on the ungated store) act on its
// upload.
type gatedStore struct {
	blob.Store
	blob.Resumable
	mp        blob.Multipart
	streaming chan struct{} // closed when the first part's first bytes reached the store
	release   chan struct{} // closed by the test: the part goes on
	once      sync.Once
}

func newGatedStore(t *testing.T, s blob.Store) *gatedStore {
	t.Helper()
	mp, ok := s.(blob.Multipart)
	require.True(t, ok)
	rs, ok := s.(blob.Resumable)
	require.True(t, ok)
	return &gatedStore{Store: s, Resumable: rs, mp: mp, streaming: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) CreateMultipart(ctx context.Context, key string) (string, error) {
	return g.mp.CreateMultipart(ctx, key)
}

func (g *gatedStore) PutPart(ctx context.Context, key, state string, n int, r io.Reader, size int64) (string, error) {
	return g.mp.PutPart(ctx, key, state, n, &gatedReader{r: r, g: g}, size)
}

func (g *gatedStore) CopyPart(ctx context.Context, key, state string, n int, src string, offset, length int64) (string, error) {
	return g.mp.CopyPart(ctx, key, state, n, src, offset, length)
}

func (g *gatedStore) CompleteMultipart(ctx context.Context, key, state string, parts []blob.Part) error {
	return g.mp.CompleteMultipart(ctx, key, state, parts)
}

func (g *gatedStore) AbortMultipart(ctx context.Context, key, state string) error {
	return g.mp.AbortMultipart(ctx, key, state)
}

type gatedReader struct {
	r     io.Reader
	g     *gatedStore
	first bool
}

func (r *gatedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 && !r.first {
		r.first = true
		r.g.once.Do(func() { close(r.g.streaming) })
		<-r.g.release
	}
	return n, err
}

// partWhile uploads body as part n of u through a server on a gated store and runs step once
// the part is mid-stream; it returns the part's answer.
func (o *objEnv) partWhile(t *testing.T, u *mpUpload, n int, body string, step func()) httpResponse {
	t.Helper()
	gate := newGatedStore(t, o.blobs)
	anon := o.anon
	gated := *o.httpBundle
	gated.baseURL = o.secondServer(t, withBlobStore(gate), withS3(func(c *s3door.Config) {
		*c = s3door.Config{AccessKeyID: s3TestAccessKey, SecretKey: s3TestSecretKey, Region: s3TestRegion, AnonKey: anon}
	}))
	var resp httpResponse
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err = u.on(&gated).req("PUT", u.partQuery(n)).with(body).sendAsync()
	}()
	select {
	case <-gate.streaming:
	case <-done:
		t.Fatalf("the part was answered before it streamed: %v %s", err, resp)
	case <-time.After(30 * time.Second):
		t.Fatal("the part did not reach the store within 30 s")
	}
	step()
	close(gate.release)
	<-done
	require.NoError(t, err)
	return resp
}

// ---------------------------------------------------------------------------------------------
// Expiry and reconcile.

// TestS3MultipartExpiry: an upload that gets no part for S3_MULTIPART_EXPIRY is gone for its
// client at once, and the collector's next run removes its row, its parts and its pieces in
// the store. Until then reconcile reports it and, even with --apply, leaves it whole.
func TestS3MultipartExpiry(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "Abandoned", func(t *testing.T, o *objEnv) {
			ctx := context.Background()
			u := o.mpCreate(t, "b", "abandoned.bin")
			p1, p2 := string(blobtestBytes(mib5, 10)), "tail"
			e1, e2 := u.mustPut(t, 1, p1), u.mustPut(t, 2, p2)
			// Each part moves the expiry to a minute after it.
			require.Equal(t, []string{"true"}, o.column(t, `select (u.expires_at = (select max(p.created_at) + interval '1 minute'
				from storage.s3_multipart_parts p where p.version = u.version))::text from storage.s3_multipart_uploads u`))

			var out strings.Builder
			rep, err := lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Apply: true, Out: &out})
			require.NoError(t, err)
			require.Equal(t, lifecycle.Report{Multipart: 1, MultipartBytes: int64(len(p1) + len(p2))}, rep, out.String())
			require.Contains(t, out.String(), "multipart     b/abandoned.bin upload "+u.id+": 2 parts, "+strconv.Itoa(len(p1)+len(p2))+" bytes, expires ")
			require.Len(t, storeLeftovers(t, o.blobs), 1, "the upload's pieces in the store")
			requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, p1)+partElem(2, p2)))

			// The minute passes (moved, not waited for): the upload is gone for its client…
			admin(t, o.db, `update storage.s3_multipart_uploads set expires_at = now() - interval '1 second'`)
			requireS3Error(t, u.listParts(t, ""), 404, "b/abandoned.bin", "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.put(t, 3, "more"), 404, "b/abandoned.bin", "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2})), 404, "b/abandoned.bin", "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.abort(t), 404, "b/abandoned.bin", "NoSuchUpload", "Upload not found")
			requireUploadsXML(t, o.s3("GET", "/s3/b?uploads").send(t), s3Doc("ListMultipartUploadsResult",
				"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"))
			// … and the collector takes the rest (the server's own collector may be the one
			// that expires it, if its first run comes this late).
			collect(t, o.newCollector(0))
			o.requireNoUploads(t)
			o.requireNothingStored(t)
			require.Empty(t, o.freedVersions(t))
			require.False(t, o.objectRow(t, "b", "abandoned.bin"))
		}, withS3(func(c *s3door.Config) { c.MultipartExpiry = time.Minute }))
	})
}

// ---------------------------------------------------------------------------------------------
// RLS.

// TestS3MultipartSession: a session-token user allowed one folder creates, uploads, lists
// and completes an upload there; is refused elsewhere at creation; sees its own uploads and
// parts only; and another user's UploadId is no upload of its own.
func TestS3MultipartSession(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "OwnFolder", func(t *testing.T, o *objEnv) {
			admin(t, o.db, ownFolderPolicies)
			userACreds, userBCreds := o.s3Session(o.userA), o.s3Session(o.userB)
			mine := userA.Sub + "/big.bin"
			u := o.mpCreateAs(t, userACreds, "b", mine, [2]string{"x-amz-meta-by", "a"})
			requireS3Error(t, o.s3("POST", "/s3/b/elsewhere.bin?uploads").as(userACreds).send(t), 403, "b/elsewhere.bin",
				"AccessDenied", "new row violates row-level security policy")
			requireS3Error(t, o.s3("POST", "/s3/b/"+userB.Sub+"/x.bin?uploads").as(userACreds).send(t), 403, "b/"+userB.Sub+"/x.bin",
				"AccessDenied", "new row violates row-level security policy")
			theirs := o.mpCreateAs(t, userBCreds, "b", userB.Sub+"/theirs.bin")
			service := o.mpCreate(t, "b", "service.bin")

			p1, p2 := string(blobtestBytes(mib5, 11)), "end of a"
			e1, e2 := u.mustPut(t, 1, p1), u.mustPut(t, 2, p2)
			theirs.mustPut(t, 1, "b's")

			// Each user lists its own uploads and parts; the service role all uploads.
			list := func(c s3Creds, uploads ...*mpUpload) {
				t.Helper()
				slices.SortFunc(uploads, func(x, y *mpUpload) int { return strings.Compare(x.key, y.key) })
				var elems string
				for _, x := range uploads {
					elems += uploadElem(x)
				}
				requireUploadsXML(t, o.s3("GET", "/s3/b?uploads").as(c).send(t), s3Doc("ListMultipartUploadsResult",
					"<Bucket>b</Bucket><KeyMarker/><UploadIdMarker/><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"+elems))
			}
			list(userACreds, u)
			list(userBCreds, theirs)
			list(s3Keys, u, theirs, service)
			requireS3XML(t, u.listParts(t, ""), 200, u.partsDoc(0, "", 1000, partElem(1, p1)+partElem(2, p2)))

			// Another user's UploadId is no upload, whatever the step.
			stolen := u.as(userBCreds)
			res := "b/" + mine
			requireS3Error(t, stolen.listParts(t, ""), 404, res, "NoSuchUpload", "Upload not found")
			requireS3Error(t, stolen.put(t, 3, "intruder"), 404, res, "NoSuchUpload", "Upload not found")
			requireS3Error(t, stolen.put(t, 2, "intruder"), 404, res, "NoSuchUpload", "Upload not found")
			requireS3Error(t, stolen.complete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2})), 404, res, "NoSuchUpload", "Upload not found")
			requireS3Error(t, stolen.abort(t), 404, res, "NoSuchUpload", "Upload not found")
			requireS3Error(t, u.as(s3Keys).put(t, 2, "intruder"), 404, res, "NoSuchUpload", "Upload not found")
			// A part is copied from what the user may read only.
			o.s3Put(t, "b", "top.txt", "the service's")
			requireS3Error(t, u.req("PUT", u.partQuery(2)).h("x-amz-copy-source", "b/top.txt").send(t), 404, res, "NoSuchKey", "Object not found")
			require.Equal(t, []string{partRow(1, p1), partRow(2, p2)}, o.partRows(t, u))

			// The owner completes it: the row is the user's.
			u.mustComplete(t, completeDoc(mpPart{1, e1}, mpPart{2, e2}), p1, p2)
			require.Equal(t, userA.Sub+" "+userA.Sub+` {"by": "a"}`, o.row(t, "b", mine, `owner_id || ' ' || owner::text || ' ' || user_metadata::text`))
			got := o.s3("GET", "/s3/b/"+mine).as(userACreds).send(t)
			require.Equal(t, 200, got.Status)
			require.True(t, p1+p2 == string(got.Body))

			requireS3Empty(t, theirs.abort(t), 204)
			requireS3Empty(t, service.abort(t), 204)
			o.requireNoUploads(t)
			o.requireNothingStored(t, "b/"+mine, "b/top.txt")
		})
	})
}
