package tus

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestFromCall: every SQLSTATE the resumable steps can raise answers in the TUS format with
// the reference's status and body; nothing a client causes is a 500.
func TestFromCall(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]Error{
		"ST001": {Status: 404, Body: "Bucket not found"},
		"ST002": {Status: 404, Body: "The file for this url was not found\n"},
		"ST004": {Status: 409, Body: "The resource already exists"},
		"ST006": {Status: 400, Body: "Bucket name invalid"},
		"ST007": {Status: 400, Body: "pg message"},
		"ST008": {Status: 413, Body: "Maximum size exceeded\n"},
		"ST009": {Status: 415, Body: "pg message"},
		"ST010": {Status: 400, Body: "pg message"},
		"ST015": {Status: 409, Body: "Upload-Offset conflict\n"},
		"42501": {Status: 403, Body: "new row violates row-level security policy"},
		"23503": {Status: 404, Body: "The related resource does not exist"},
		"23505": {Status: 409, Body: "The resource already exists"},
		"55P03": {Status: 423, Body: "The resource is locked"},
		"57014": {Status: 503, Body: "The connection to the database timed out"},
		"22P02": {Status: 400, Body: "pg message"}, // any other refusal keeps its status
		"XX000": {Status: 500, Body: "Something went wrong with that request\n"},
	} {
		got := fromCall(&pgconn.PgError{Code: code, Message: "pg message"})
		require.Equal(t, want.Status, got.Status, code)
		require.Equal(t, want.Body, got.Body, code)
	}
	require.Same(t, errGone, fromCall(errGone), "TUS errors pass through")
	require.Equal(t, 500, fromCall(errors.New("boom")).Status)
}
