package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsJSONBText(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]bool{
		`{"a":"b"}`:              true,
		`{"a":"\u0001"}`:         true,
		`{"a":"\\u0000"}`:        true, // an escaped backslash, then the text u0000
		`{"a":"\\\\u0000"}`:      true,
		`{"a":"\u0000"}`:         false,
		`{"\u0000":1}`:           false,
		`{"a":"x\\\u0000"}`:      false, // an escaped backslash, then the escape
		`{"a":["\u0000"]}`:       false,
		"{\"a\":\"\xff\"}":       false,
		"{\"a\":\"\x00\"}":       false,
		`{"a":"\u00000"}`:        false,
		`{"a":"\u0100"}`:         true,
		`{"a":"tail\u000`:        true, // not JSON, but nothing jsonb would refuse as text
		`{"a":"\"\u0000"}`:       false,
		`{"a":"\"","b":"u0000"}`: true,
		// UTF-16 surrogate escapes: jsonb takes a high-low pair, and refuses either half alone.
		`{"a":"\ud83d\ude00"}`: true,
		`{"a":"\uD83D\uDE00"}`: true,
		`{"a":"\ud800"}`:       false,
		`{"\udc00":1}`:         false,
		`{"a":"\ude00\ud83d"}`: false,
		`{"a":"\ud83d\u0041"}`: false,
		`{"a":"\ud83dx"}`:      false,
		`{"a":"\\ud800"}`:      true, // an escaped backslash, then the text ud800
	} {
		require.Equal(t, want, isJSONBText([]byte(doc)), doc)
	}
}

func TestClientBody(t *testing.T) {
	t.Parallel()
	read := func(r io.Reader, size *int64) error {
		_, err := io.ReadAll(newClientBody(r, size))
		return err
	}
	n := func(v int64) *int64 { return &v }
	require.NoError(t, read(strings.NewReader("12345"), n(5)))
	require.NoError(t, read(strings.NewReader("12345"), nil))
	// Shorter than announced: the client's mistake.
	err := read(strings.NewReader("123"), n(5))
	require.ErrorIs(t, err, ErrBodyIncomplete)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the cause is kept for the log")
	// A reader's error becomes the client's, a timeout a 408.
	require.ErrorIs(t, read(io.MultiReader(strings.NewReader("1"), errReader{io.ErrUnexpectedEOF}), nil), ErrBodyIncomplete)
	require.ErrorIs(t, read(errReader{timeoutError{}}, nil), ErrRequestTimeout)
	// A refusal passes as it is (a size limit, say).
	require.Same(t, ErrNoContent, errors.Unwrap(errWrap{read(errReader{ErrNoContent}, nil)}))
	// internalError keeps a client's refusal that a store's error wraps.
	wrapped := internalError(errWrapf(read(strings.NewReader("1"), n(2))))
	require.Equal(t, 400, wrapped.Status)
	require.ErrorIs(t, wrapped, ErrBodyIncomplete)
	require.ErrorIs(t, internalError(errors.New("disk full")), ErrInternal)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

type errWrap struct{ err error }

func (e errWrap) Error() string { return e.err.Error() }
func (e errWrap) Unwrap() error { return e.err }

func errWrapf(err error) error { return errWrap{errWrap{err}} }
