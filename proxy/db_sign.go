package proxy

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// URLSign calls storage.url_sign: a download URL for an object the caller can see.
// With transformations (and a format), the URL renders the image as they say.
func (db *DB) URLSign(ctx context.Context, settings []any, bucket, name string, expiresIn int64, transformations, format *string) (url string, err error) {
	err = db.call(ctx, settings, `select storage.url_sign(bucket_id => $1, name => $2, expires_in => $3, transformations => $4, format => $5)`,
		[]any{bucket, name, expiresIn, transformations, format}, func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&url)
			}
			return nil
		})
	return url, err
}

// signedURL is one entry of a batch signing.
type signedURL struct {
	Path       string
	URL, Error *string
}

// URLSignMany calls storage.url_sign_many: one entry per name, in input order.
func (db *DB) URLSignMany(ctx context.Context, settings []any, bucket string, names []string, expiresIn int64) ([]signedURL, error) {
	var out []signedURL
	err := db.call(ctx, settings,
		`select path, signed_url, error from storage.url_sign_many(bucket_id => $1, names => $2, expires_in => $3)`,
		[]any{bucket, names, expiresIn}, func(rows pgx.Rows) error {
			for rows.Next() {
				var u signedURL
				if err := rows.Scan(&u.Path, &u.URL, &u.Error); err != nil {
					return err
				}
				out = append(out, u)
			}
			return nil
		})
	return out, err
}

// URLSignUpload calls storage.url_sign_upload: an upload URL and its token.
func (db *DB) URLSignUpload(ctx context.Context, settings []any, bucket, name string, upsert bool, expiresIn int64) (url, token string, err error) {
	err = db.call(ctx, settings,
		`select url, token from storage.url_sign_upload(bucket_id => $1, name => $2, upsert => $3, expires_in => $4)`,
		[]any{bucket, name, upsert, expiresIn}, func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&url, &token)
			}
			return nil
		})
	return url, token, err
}
