package s3

import (
	"github.com/valyala/fasthttp"
)

// operation is one S3 operation: its id (storage.operation, as the reference names it) and
// its handler.
type operation struct {
	name string
	run  func(s *Server, r *request) error
}

// Operation ids.
const (
	opListBuckets       = "storage.s3.bucket.list"
	opCreateBucket      = "storage.s3.bucket.create"
	opDeleteBucket      = "storage.s3.bucket.delete"
	opHeadBucket        = "storage.s3.bucket.head"
	opGetLocation       = "storage.s3.bucket.get_location"
	opGetVersioning     = "storage.s3.bucket.get_versioning"
	opListObjects       = "storage.s3.object.list"
	opPutObject         = "storage.s3.upload"
	opPostObject        = "storage.s3.upload.post"
	opGetObject         = "storage.s3.object.get"
	opHeadObject        = "storage.s3.object.info"
	opGetTagging        = "storage.s3.object.get_tagging"
	opCopyObject        = "storage.s3.object.copy"
	opDeleteObject      = "storage.s3.object.delete"
	opDeleteObjects     = "storage.s3.object.delete_many"
	opNotImplemented    = "storage.s3.not_implemented"
	opCreateMultipart   = "storage.s3.upload.create_multipart"
	opUploadPart        = "storage.s3.upload.part"
	opUploadPartCopy    = "storage.s3.upload.part_copy"
	opCompleteMultipart = "storage.s3.upload.complete_multipart"
	opAbortMultipart    = "storage.s3.upload.abort_multipart"
	opListParts         = "storage.s3.upload.list_parts"
	opListMultipart     = "storage.s3.upload.list_multipart"
	opBadPart           = "storage.s3.upload.part_invalid"
	opUnmatched         = "storage.s3.unmatched" // no operation (yet): a path or request S3 does not define
)

var (
	listBuckets       = &operation{opListBuckets, (*Server).listBuckets}
	createBucket      = &operation{opCreateBucket, (*Server).createBucket}
	deleteBucket      = &operation{opDeleteBucket, (*Server).deleteBucket}
	headBucket        = &operation{opHeadBucket, (*Server).headBucket}
	getLocation       = &operation{opGetLocation, (*Server).getLocation}
	getVersioning     = &operation{opGetVersioning, (*Server).getVersioning}
	listObjects       = &operation{opListObjects, (*Server).listObjects}
	putObject         = &operation{opPutObject, (*Server).putObject}
	getObject         = &operation{opGetObject, (*Server).getObject}
	headObject        = &operation{opHeadObject, (*Server).headObject}
	getTagging        = &operation{opGetTagging, (*Server).getTagging}
	copyObject        = &operation{opCopyObject, (*Server).copyObject}
	deleteObject      = &operation{opDeleteObject, (*Server).deleteObject}
	deleteObjects     = &operation{opDeleteObjects, (*Server).deleteObjects}
	notImplemented    = &operation{opNotImplemented, func(*Server, *request) error { return errNotImplemented }}
	createMultipart   = &operation{opCreateMultipart, (*Server).createMultipart}
	uploadPart        = &operation{opUploadPart, (*Server).uploadPart}
	uploadPartCopy    = &operation{opUploadPartCopy, (*Server).uploadPartCopy}
	completeMultipart = &operation{opCompleteMultipart, (*Server).completeMultipart}
	abortMultipart    = &operation{opAbortMultipart, (*Server).abortMultipart}
	listParts         = &operation{opListParts, (*Server).listParts}
	listMultipart     = &operation{opListMultipart, (*Server).listMultipartUploads}
	// A part upload needs both partNumber and uploadId (the reference stores the body as the
	// object when one is missing).
	badPart = &operation{opBadPart, func(*Server, *request) error {
		return errInvalidRequest.with("A part upload needs both partNumber and uploadId")
	}}
	// Browser POST uploads are not served yet: NotImplemented.
	postObject = &operation{opPostObject, func(*Server, *request) error { return errNotImplemented }}
)

// Sub-resources S3 defines on buckets and objects that this server does not implement. The
// reference lets them fall through to the catch-all operation (GET ?acl lists the bucket, PUT
// ?tagging overwrites the object with the tagging document); here they are NotImplemented.
var (
	bucketSubresources = []string{"acl", "policy", "policyStatus", "cors", "lifecycle", "website", "tagging",
		"encryption", "replication", "object-lock", "ownershipControls", "publicAccessBlock",
		"notification", "logging", "accelerate", "requestPayment", "analytics", "inventory", "metrics",
		"intelligent-tiering", "versions", "metadataTable", "session"}
	objectSubresources = []string{"acl", "retention", "legal-hold", "torrent", "attributes", "restore", "select",
		"renameObject"}
)

func hasAny(args *fasthttp.Args, names []string) bool {
	for _, n := range names {
		if args.Has(n) {
			return true
		}
	}
	return false
}

// dispatch picks the operation of a request (S3.md §1.3), or nil for a shape the reference
// answers with an empty 404.
func (s *Server) dispatch(r *request) *operation {
	ctx := r.ctx
	q := ctx.QueryArgs()
	method := string(ctx.Method())
	copySource := ctx.Request.Header.Peek("x-amz-copy-source") != nil
	switch {
	case r.bucket == "":
		if method == fasthttp.MethodGet {
			return listBuckets
		}
		return nil
	case !r.hasKey:
		switch method {
		case fasthttp.MethodGet:
			switch {
			case q.Has("uploads"):
				return listMultipart
			case q.Has("location"):
				return getLocation
			case q.Has("versioning"):
				return getVersioning
			case hasAny(q, bucketSubresources):
				return notImplemented
			}
			return listObjects
		case fasthttp.MethodHead:
			return headBucket
		case fasthttp.MethodPut:
			if q.Has("versioning") || hasAny(q, bucketSubresources) {
				return notImplemented
			}
			return createBucket
		case fasthttp.MethodDelete:
			if hasAny(q, bucketSubresources) {
				return notImplemented
			}
			return deleteBucket
		case fasthttp.MethodPost:
			switch {
			case isForm(ctx):
				return postObject
			case q.Has("delete"):
				return deleteObjects
			}
		}
		return nil
	}
	switch method {
	case fasthttp.MethodGet:
		switch {
		case q.Has("uploadId"):
			return listParts
		case q.Has("tagging"):
			return getTagging
		case hasAny(q, objectSubresources):
			return notImplemented
		}
		return getObject
	case fasthttp.MethodHead:
		return headObject
	case fasthttp.MethodPut:
		switch {
		case q.Has("uploadId") && q.Has("partNumber") && copySource:
			return uploadPartCopy
		case q.Has("uploadId") && q.Has("partNumber"):
			return uploadPart
		case q.Has("uploadId") || q.Has("partNumber"):
			return badPart
		case q.Has("tagging") || hasAny(q, objectSubresources):
			return notImplemented
		case copySource:
			return copyObject
		}
		return putObject
	case fasthttp.MethodPost:
		switch {
		case q.Has("uploadId"):
			return completeMultipart
		case q.Has("uploads"):
			return createMultipart
		}
		if hasAny(q, objectSubresources) {
			return notImplemented
		}
		return nil
	case fasthttp.MethodDelete:
		switch {
		case q.Has("uploadId"):
			return abortMultipart
		case q.Has("tagging") || hasAny(q, objectSubresources):
			return notImplemented
		}
		return deleteObject
	}
	return nil
}

// isForm reports a browser POST upload's body.
func isForm(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	return len(ct) >= 19 && string(ct[:19]) == "multipart/form-data"
}
