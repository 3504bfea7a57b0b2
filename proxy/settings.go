package proxy

import "strconv"

// The request settings (GUCs) the prelude sets, transaction-locally, before every call into
// the SQL API. The names are Supabase Storage's (its database scope), so policies and the
// auth.* helpers written for Supabase read the same values here. storage.allow_delete_query is
// set for policies and triggers ported from Supabase that look for it; this schema itself
// never blocks plain SQL deletes. storage.upload_file_size_limit is ours: the server's global
// limit, which the SQL API compares bucket limits against; so is storage.request_id, the
// request's X-Request-Id, which storage events carry as reqId. statement_timeout and lock_timeout
// are PostgreSQL's own: set here, they bound the request's call and die with its transaction,
// so a request blocked on a lock or a slow statement gives its pooled connection back.
const (
	settingRole          = "role"
	settingClaimRole     = "request.jwt.claim.role"
	settingJWT           = "request.jwt"
	settingClaimSub      = "request.jwt.claim.sub"
	settingClaims        = "request.jwt.claims"
	settingHeaders       = "request.headers"
	settingMethod        = "request.method"
	settingPath          = "request.path"
	settingOperation     = "storage.operation"
	settingAllowDelete   = "storage.allow_delete_query"
	settingUploadMaxSize = "storage.upload_file_size_limit"
	settingRequestID     = "storage.request_id"
	settingStatementTime = "statement_timeout"
	settingLockTime      = "lock_timeout"
)

// preludeSettings lists the settings in the order the prelude binds them ($1, $2, …).
var preludeSettings = []string{
	settingRole, settingClaimRole, settingJWT, settingClaimSub, settingClaims, settingHeaders,
	settingMethod, settingPath, settingOperation, settingAllowDelete, settingUploadMaxSize,
	settingRequestID, settingStatementTime, settingLockTime,
}

// preludeSQL is the one statement that opens every request's transaction.
var preludeSQL = func() string {
	s := "select "
	for i, name := range preludeSettings {
		if i > 0 {
			s += ", "
		}
		s += "set_config('" + name + "', $" + strconv.Itoa(i+1) + ", true)"
	}
	return s
}()

// Operation ids written to storage.operation, as Supabase Storage names them, so policies can
// branch on storage.operation() / storage.allow_only_operation().
const (
	opBucketCreate = "storage.bucket.create"
	opBucketGet    = "storage.bucket.get"
	opBucketList   = "storage.bucket.list"
	opBucketUpdate = "storage.bucket.update"
	opBucketDelete = "storage.bucket.delete"
	opBucketEmpty  = "storage.bucket.empty"
	opHealth       = "storage.health"

	opObjectUpload           = "storage.object.upload"
	opObjectUploadUpdate     = "storage.object.upload_update"
	opObjectGetAuthenticated = "storage.object.get_authenticated"
	opObjectGetPublic        = "storage.object.get_public"
	opObjectInfoPublic       = "storage.object.info_public"
	opObjectInfoAuth         = "object.get_authenticated_info"
	opObjectHeadInfo         = "object.head_authenticated_info"
	opObjectDelete           = "storage.object.delete"
	opObjectDeleteMany       = "storage.object.delete_many"
	opObjectSign             = "storage.object.sign"
	opObjectList             = "storage.object.list"
	opObjectMove             = "storage.object.move"
	opObjectCopy             = "storage.object.copy"
	opObjectListV2           = "storage.object.list_v2"
	opObjectSignMany         = "storage.object.sign_many"
	opObjectGetSigned        = "storage.object.get_signed"
	opObjectSignUploadURL    = "storage.object.sign_upload_url"
	opObjectUploadSigned     = "storage.object.upload_signed"
	opRenderPublic           = "storage.render.image_public"
	opRenderAuthenticated    = "storage.render.image_authenticated"
	opRenderSigned           = "storage.render.image_sign"
)
