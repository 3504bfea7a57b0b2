// Package proxy is the HTTP face of the storage server: a fasthttp server whose routes each
// verify the caller (JWT or signed token), make one call into the storage SQL API inside one
// pooled transaction (prelude + call, pipelined into one round trip), and write the result in
// the wire format of Supabase Storage, quirks included.
//
// Where things are: routes.go registers every route; errors.go is the one SQLSTATE→HTTP table
// and the one error renderer; db.go is the only code that talks to PostgreSQL; auth.go
// reads the bearer token and turns package identity's refusals into REST errors (identity
// verifies tokens and roles for every door); settings.go names the request settings policies
// read; input.go refuses client input the database cannot store and bodies that end early;
// logging.go keeps credentials out of the log and answers requests fasthttp cannot read.
package proxy
