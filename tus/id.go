package tus

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
)

// uploadID names an upload in URLs: the object it will be and the version it is written under.
type uploadID struct {
	Bucket, Name, Version string
}

// String is the id's public form, the last segment of the upload URL: base64url without
// padding of "bucket/name/version" (the reference's, minus its tenant).
func (u uploadID) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(u.Bucket + "/" + u.Name + "/" + u.Version))
}

// parseID decodes the last segment of an upload URL. Padding is tolerated, as by the
// reference's decoder.
func parseID(s string) (uploadID, *Error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return uploadID{}, errInvalidID
	}
	parts := strings.Split(string(b), "/")
	if len(parts) < 2 {
		return uploadID{}, errInvalidID
	}
	u := uploadID{Bucket: parts[0], Version: parts[len(parts)-1], Name: strings.Join(parts[1:len(parts)-1], "/")}
	if u.Version == "" {
		return uploadID{}, errNoVersion
	}
	return u, nil
}

// lockKey is the advisory lock key of an upload, computed as the reference does
// (hashStringToInt of "bucket/name/version": djb2-xor over UTF-16 code units, unsigned 32 bit),
// so that a reference server sharing the database excludes the same writers.
func (u uploadID) lockKey() int64 {
	h := uint32(5381)
	for _, c := range utf16.Encode([]rune(u.Bucket + "/" + u.Name + "/" + u.Version)) {
		h = h*33 ^ uint32(c)
	}
	return int64(h)
}
