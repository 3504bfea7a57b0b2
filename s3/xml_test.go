package s3

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestXMLDocument(t *testing.T) {
	t.Parallel()
	d := newXML("ListBucketResult")
	d.elem("Name", "b")
	d.elem("Prefix", "")
	d.open("Contents")
	d.elem("Key", "a&b<c>d\"e'f\rg\th\ni\x01j\uFFFEk")
	d.elem("ETag", `"5eb63bbbe01eeed093cb22bb8f5acdc3"`)
	d.close("Contents")
	require.Equal(t, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+
		`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix/>`+
		"<Contents><Key>a&amp;b&lt;c&gt;d\"e'f&#xD;g\th\ni\uFFFDj\uFFFDk</Key>"+
		`<ETag>"5eb63bbbe01eeed093cb22bb8f5acdc3"</ETag></Contents></ListBucketResult>`, string(d.bytes()))
}

func TestXMLWellFormed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc, err string
	}{
		{"<Delete><Object><Key>k</Key></Object></Delete>", ""},
		{"\xef\xbb\xbf<Delete/>", ""},
		{"<Delete><Object><Key>&#48;</Key></Object></Delete>", ""},
		{"<Delete>", "Invalid XML payload: XML syntax error on line 1: unexpected EOF"},
		{`<!DOCTYPE x [<!ENTITY a "b">]><Delete/>`, "Invalid XML payload: DOCTYPE is not supported"},
		{"<a/><b/>", "Invalid XML payload: the document must have exactly one root element"},
		{"", "Invalid XML payload: the document must have exactly one root element"},
		{"<Delete>&unknown;</Delete>", "Invalid XML payload: XML syntax error on line 1: invalid character entity &unknown;"},
	} {
		err := xmlWellFormed([]byte(tc.doc))
		if tc.err == "" {
			require.NoError(t, err, tc.doc)
			continue
		}
		require.Equal(t, &Error{Status: 400, Code: "MalformedXML", Message: tc.err}, err, tc.doc)
	}
}

func TestContinuationToken(t *testing.T) {
	t.Parallel()
	require.Equal(t, "bDpiLnR4dA==", encodeToken("b.txt", false))
	after, err := decodeToken(encodeToken("c/2.txt", true))
	require.NoError(t, err)
	require.Equal(t, "c/2.txt", after)
	after, err = decodeToken("bDpiLnR4dA==")
	require.NoError(t, err)
	require.Equal(t, "b.txt", after)
	// A resume point the database could not store as text (NUL, invalid UTF-8) is refused
	// here, as a token this server never issued, not by the database.
	for _, bad := range []string{"zzzz", "not base64!", "eDpiLnR4dA==" /* x:b.txt */, "bA==" /* l */, "bDphAA==" /* l:a\x00 */, "bDr/" /* l:\xff */} {
		_, err := decodeToken(bad)
		require.Equal(t, invalidParameter("continuation token"), err, bad)
	}
}

func TestCopySource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h, bucket, key string
		err            error
	}{
		{"b/src.txt", "b", "src.txt", nil},
		{"/b/dir/a%20b%2Bc.txt", "b", "dir/a b+c.txt", nil},
		{"b/src%2Etxt", "b", "src.txt", nil},
		{"b", "", "", errMissingCopySource},
		{"b/", "", "", errMissingCopySource},
		{"/k", "", "", errMissingCopySource},
		{"//k", "", "", errInvalidBucketName},
		{"b/k?versionId=3", "", "", errNotImplemented.with("Object versions are not supported")},
	} {
		bucket, key, err := copySource(tc.h)
		require.Equal(t, tc.err, err, tc.h)
		require.Equal(t, tc.bucket, bucket, tc.h)
		require.Equal(t, tc.key, key, tc.h)
	}
}

func TestURLEncodingType(t *testing.T) {
	t.Parallel()
	require.Equal(t, "e%20f.txt", maybeEncode("e f.txt", true))
	require.Equal(t, "c%2F", maybeEncode("c/", true))
	require.Equal(t, "a%3Ab!'()*-._~", maybeEncode("a:b!'()*-._~", true))
	require.Equal(t, "c/", maybeEncode("c/", false))
}
